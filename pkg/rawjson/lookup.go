package rawjson

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
	if len(path) == 0 || start >= len(doc) || doc[start] != '{' {
		end, err := skipValue(doc, start, 0)
		if err != nil {
			return nil, 0, err
		}
		if skipSpace(doc, end) != len(doc) {
			return nil, 0, ErrSyntax
		}
		return doc[start:end], 0, nil
	}
	// The usual case, an object: checking it and finding the first key are
	// one walk over its members.
	member, ok, err := lastMember(doc, path[0])
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		end := len(doc)
		for isSpace(doc[end-1]) {
			end--
		}
		return doc[start:end], 0, nil
	}
	// The member was checked with the rest: the walks below cannot fail.
	raw, found = member, 1
	for found < len(path) {
		if member, ok, err = Member(raw, path[found]); err != nil || !ok {
			return raw, found, err
		}
		raw = member
		found++
	}
	return raw, found, nil
}

// Member returns the value of the last member named key of obj, a JSON
// value as Lookup returns one; ok is false when obj is not an object or has
// no such member.
func Member(obj []byte, key string) (member []byte, ok bool, err error) {
	if len(obj) == 0 || obj[0] != '{' {
		return nil, false, nil
	}
	return lastMember(obj, key)
}

// lastMember walks the whole object data holds and returns the value of its
// last member named key.
func lastMember(data []byte, key string) (member []byte, ok bool, err error) {
	err = Members(data, key, func(key string, k, v []byte, _ bool) error {
		if string(k) == key {
			member, ok = v, true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
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
	s, err := String(raw, true)
	return []byte(s), err
}
