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
	var end int
	var member []byte
	var ok bool
	if len(path) > 0 && start < len(doc) && doc[start] == '{' {
		// The usual case, an object: checking it and finding the first key
		// are one walk over its members.
		member, end, ok, err = scanObject(doc, start, path[0])
	} else {
		end, err = skipValue(doc, start, 0)
	}
	if err != nil {
		return nil, 0, err
	}
	if skipSpace(doc, end) != len(doc) {
		return nil, 0, errSyntax
	}
	raw = doc[start:end]
	if !ok {
		return raw, 0, nil
	}
	// The member was checked with the rest: the walks below cannot fail.
	raw, found = member, 1
	for found < len(path) {
		if member, ok, err = memberOf(raw, path[found]); err != nil || !ok {
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
	member, _, ok, err = scanObject(obj, 0, key)
	return member, ok, err
}

// scanObject checks the JSON object starting at b[i] == '{' and returns the
// value of its last member named key, and the index after the object; ok
// is false when it has no such member.
func scanObject(b []byte, i int, key string) (member []byte, end int, ok bool, err error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, i + 1, false, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, 0, false, errSyntax
		}
		kend, escaped, err := skipString(b, i)
		if err != nil {
			return nil, 0, false, err
		}
		match := !escaped && string(b[i+1:kend-1]) == key
		if escaped {
			k, err := stringValue(b[i:kend], true)
			if err != nil {
				return nil, 0, false, err
			}
			match = k == key
		}
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return nil, 0, false, errSyntax
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i, 1)
		if err != nil {
			return nil, 0, false, err
		}
		if match {
			member, ok = b[i:vend], true
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return nil, 0, false, errSyntax
		}
		switch b[i] {
		case '}':
			return member, i + 1, ok, nil
		case ',':
			i = skipSpace(b, i+1)
		default:
			return nil, 0, false, errSyntax
		}
	}
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
