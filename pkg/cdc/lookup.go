package cdc

import "errors"

// Lookup finds the value at path, a list of object keys outermost first, in
// the JSON document doc (an event's after or before). It returns the raw
// value at the longest prefix of path that exists, and how many keys of
// path that prefix holds: found == len(path) means the value itself; less
// means raw is not an object or has no member path[found]. When a key
// appears twice in an object the last one counts, as in encoding/json. The
// whole document is checked: an error means doc is not valid JSON.
//
// It reads the document in one pass without building a tree, which is why
// projections use it on every order.
func Lookup(doc []byte, path []string) (raw []byte, found int, err error) {
	start := skipSpace(doc, 0)
	end, err := skipValue(doc, start, 0)
	if err != nil {
		return nil, 0, err
	}
	if skipSpace(doc, end) != len(doc) {
		return nil, 0, errSyntax
	}
	raw = doc[start:end]
	for found < len(path) {
		member, ok, err := memberOf(raw, path[found])
		if err != nil || !ok {
			return raw, found, err
		}
		raw = member
		found++
	}
	return raw, found, nil
}

// memberOf returns the value of the last member named key of obj, a valid
// JSON value; ok is false when obj is not an object or has no such member.
func memberOf(obj []byte, key string) (member []byte, ok bool, err error) {
	if len(obj) == 0 || obj[0] != '{' {
		return nil, false, nil
	}
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		kend, escaped, err := skipString(obj, i)
		if err != nil {
			return nil, false, err
		}
		match := !escaped && string(obj[i+1:kend-1]) == key
		if escaped {
			k, err := stringValue(obj[i:kend], true)
			if err != nil {
				return nil, false, err
			}
			match = k == key
		}
		i = skipSpace(obj, kend)
		i = skipSpace(obj, i+1) // past ':'
		vend, err := skipValue(obj, i, 0)
		if err != nil {
			return nil, false, err
		}
		if match {
			member, ok = obj[i:vend], true
		}
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return member, ok, nil
}

// StringBytes returns the contents of raw, a JSON string such as Lookup
// returns, unescaped. Without escapes it is a slice of raw, not a copy.
func StringBytes(raw []byte) ([]byte, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return nil, errors.New("not a JSON string")
	}
	end, escaped, err := skipString(raw, 0)
	if err != nil || end != len(raw) {
		return nil, errors.New("not a JSON string")
	}
	if !escaped {
		return raw[1 : end-1], nil
	}
	s, err := stringValue(raw, true)
	return []byte(s), err
}
