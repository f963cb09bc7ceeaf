package rawjson

import (
	"errors"
	"fmt"
)

// Members calls fn with each member of the JSON object data holds (spaces
// around it allowed), in order: its name, unescaped (a slice of data unless
// it holds escapes), the raw bytes of its value, and whether the value is a
// string holding escapes (see String). It checks the object as it goes and
// returns the first error, fn's or its own (a value's error names its
// member); nil means data held a valid object and nothing else. Each
// member's value may nest MaxDepth levels.
//
// v is handed to fn as it is, so that fn can be a plain function rather than
// a closure: decoding events calls fn for every field of millions of them.
func Members[T any](data []byte, v T, fn func(v T, key, value []byte, escaped bool) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errors.New("not a JSON object")
	}
	if i = skipSpace(data, i+1); i < len(data) && data[i] == '}' {
		return endOfObject(data, i+1)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return ErrSyntax
		}
		kend, kesc, err := skipString(data, i)
		if err != nil {
			return err
		}
		key := data[i+1 : kend-1]
		if kesc {
			k, err := String(data[i:kend], true)
			if err != nil {
				return err
			}
			key = []byte(k)
		}
		if i = skipSpace(data, kend); i >= len(data) || data[i] != ':' {
			return ErrSyntax
		}
		start, escaped := skipSpace(data, i+1), false
		if start < len(data) && data[start] == '"' {
			i, escaped, err = skipString(data, start)
		} else {
			i, err = skipValue(data, start, 0)
		}
		if err != nil {
			return fmt.Errorf("field %s: %w", key, err)
		}
		if err := fn(v, key, data[start:i], escaped); err != nil {
			return err
		}
		switch i = skipSpace(data, i); {
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		case i < len(data) && data[i] == '}':
			return endOfObject(data, i+1)
		default:
			return ErrSyntax
		}
	}
}

// endOfObject checks that nothing but spaces follow an object ending before
// data[i].
func endOfObject(data []byte, i int) error {
	if skipSpace(data, i) != len(data) {
		return errors.New("data after the object")
	}
	return nil
}
