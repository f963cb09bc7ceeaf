package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// The checks below catch at start-up the names that would otherwise fail
// minutes later, deep in a replication handshake or a JetStream call, with
// an error that no longer names the variable. Each returns why the value is
// wrong; the caller adds the variable and what it wants.

// maxIdentifier is PostgreSQL's NAMEDATALEN-1: longer names are silently
// truncated, so a slot or table would not be the one configured.
const maxIdentifier = 63

// checkIdentifier accepts what PostgreSQL takes unquoted (letters, digits,
// _ and $, not starting with a digit or $). The code quotes identifiers, so
// upper case is kept as written.
func checkIdentifier(s string) error {
	return checkIdentifierLen(s, maxIdentifier)
}

func checkIdentifierLen(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case len(s) > max:
		return fmt.Errorf("%q is longer than %d bytes", s, max)
	}
	for i, r := range s {
		ok := unicode.IsLetter(r) || r == '_' || (i > 0 && (unicode.IsDigit(r) || r == '$'))
		if !ok {
			return fmt.Errorf("%q: %q is not allowed in a name", s, r)
		}
	}
	return nil
}

// checkTable accepts schema.table, keeping room for suffix more bytes
// after the table name (a table the code derives from it).
func checkTable(s string, suffix int) error {
	schema, table, ok := strings.Cut(s, ".")
	if !ok || strings.Contains(table, ".") {
		return fmt.Errorf("%q is not schema.table", s)
	}
	if err := checkIdentifier(schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if err := checkIdentifierLen(table, maxIdentifier-suffix); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	return nil
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// checkSlot applies PostgreSQL's rule for replication slot names, which is
// stricter than for identifiers.
func checkSlot(s string) error {
	if !slotName.MatchString(s) {
		return errors.New("only lower-case letters, digits and _, at most 63")
	}
	return nil
}

// checkMongoDB applies MongoDB's rules for database names.
func checkMongoDB(s string) error {
	if i := strings.IndexAny(s, "/\\. \"$*<>:|?\x00"); i >= 0 {
		return fmt.Errorf("%q is not allowed in a database name", s[i])
	}
	if len(s) >= 64 {
		return errors.New("longer than 63 bytes")
	}
	return nil
}

// checkCollection applies MongoDB's rules for collection names.
func checkCollection(s string) error {
	if strings.ContainsAny(s, "$\x00") {
		return errors.New("$ is not allowed in a collection name")
	}
	if strings.HasPrefix(s, "system.") {
		return errors.New("system collections cannot be captured")
	}
	return nil
}

// checkFieldPath accepts a field name or a dotted path: empty segments
// (a..b) name no field, and $ starts an operator, not a field.
func checkFieldPath(s string) error {
	for seg := range strings.SplitSeq(s, ".") {
		if seg == "" {
			return errors.New("empty path segment")
		}
		if strings.HasPrefix(seg, "$") {
			return fmt.Errorf("segment %q starts with $", seg)
		}
	}
	return nil
}

// checkStream applies the rule of nats.go's jetstream.validateStreamName.
func checkStream(s string) error {
	if i := strings.IndexAny(s, ">*. /\\\t\r\n"); i >= 0 {
		return fmt.Errorf("%q is not allowed in a stream name", s[i])
	}
	return nil
}

// checkSubject accepts a literal subject: the code appends tokens to the
// prefixes and publishes to them, where wildcards are refused.
func checkSubject(s string) error {
	for tok := range strings.SplitSeq(s, ".") {
		switch {
		case tok == "":
			return errors.New("empty subject token")
		case tok == "*" || tok == ">":
			return fmt.Errorf("wildcard %q", tok)
		case strings.ContainsAny(tok, " \t\r\n"):
			return errors.New("white space in a subject")
		}
	}
	return nil
}

var bucketName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// checkBucket applies nats.go's rule for key-value and object store
// buckets.
func checkBucket(s string) error {
	if !bucketName.MatchString(s) {
		return errors.New("only letters, digits, _ and -")
	}
	return nil
}
