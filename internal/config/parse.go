package config

import (
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// target is what the parsers of Vars fill: the Config, and the parts of
// the URLs that the seed-compatible variables spell out (SQL_*,
// MONGO_HOST, MONGO_PORT), which FromEnv joins afterwards.
type target struct {
	Config
	sqlUser, sqlPassword, sqlHost, sqlDB string
	sqlPort                              int
	mongoHost                            string
	mongoPort                            int
}

// A parser reads one variable's value into t. Its error is a *wantError;
// FromEnv prefixes it with the variable and the value.
type parser func(t *target, value string) error

// wantError says what a variable wants instead of its value and, when the
// value is long (a list, a qualified name), which part is wrong.
type wantError struct {
	want   string
	reason error
}

func (e *wantError) Error() string {
	if e.reason == nil {
		return "want " + e.want
	}
	return "want " + e.want + ": " + e.reason.Error()
}

func (e *wantError) Unwrap() error { return e.reason }

// A check validates a value that is not empty.
type check func(value string) *wantError

// because is a check from fn, whose error says why the value is not want.
func because(want string, fn func(string) error) check {
	return func(v string) *wantError {
		if err := fn(v); err != nil {
			return &wantError{want: want, reason: err}
		}
		return nil
	}
}

// must is a check from a predicate: the value is want or it is not.
func must(want string, ok func(string) bool) check {
	return func(v string) *wantError {
		if !ok(v) {
			return &wantError{want: want}
		}
		return nil
	}
}

// text stores the value as it is; an empty value means "none" or "off"
// and skips the checks (required refuses it where it does not).
func text(field func(*target) *string, checks ...check) parser {
	return func(t *target, v string) error {
		*field(t) = v
		if v == "" {
			return nil
		}
		for _, c := range checks {
			if err := c(v); err != nil {
				return err
			}
		}
		return nil
	}
}

// required refuses an empty value, saying it wants want, before p.
func required(want string, p parser) parser {
	return func(t *target, v string) error {
		if v == "" {
			return &wantError{want: want}
		}
		return p(t, v)
	}
}

// number reads an integer from lo to hi.
func number(field func(*target) *int, lo, hi int, want string) parser {
	return func(t *target, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return &wantError{want: want}
		}
		*field(t) = n
		return nil
	}
}

func port(field func(*target) *int) parser {
	return number(field, 1, 65535, "a port number between 1 and 65535")
}

// duration reads a time.Duration of at least least.
func duration(field func(*target) *time.Duration, least time.Duration, want string) parser {
	return func(t *target, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return &wantError{want: want}
		}
		*field(t) = d
		return nil
	}
}

// oneOf reads one of options, in any case, and stores it in lower case.
func oneOf(field func(*target) *string, want string, options ...string) parser {
	return func(t *target, v string) error {
		v = strings.ToLower(v)
		*field(t) = v
		for _, o := range options {
			if v == o {
				return nil
			}
		}
		return &wantError{want: want}
	}
}

func logLevel(field func(*target) *slog.Level, want string) parser {
	return func(t *target, v string) error {
		if err := field(t).UnmarshalText([]byte(v)); err != nil {
			return &wantError{want: want}
		}
		return nil
	}
}

// table checks schema.table, leaving room for suffix more bytes after the
// table name (a table the code derives from it).
func table(want string, suffix int) check {
	return func(v string) *wantError {
		if strings.Count(v, ".") != 1 {
			return &wantError{want: want}
		}
		if err := checkTable(v, suffix); err != nil {
			return &wantError{want: want, reason: err}
		}
		return nil
	}
}

func isPostgresURL(u string) bool {
	pu, err := url.Parse(u)
	return err == nil && (pu.Scheme == "postgres" || pu.Scheme == "postgresql")
}

func isHTTPURL(u string) bool {
	pu, err := url.Parse(u)
	return err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != ""
}

func isMongoURI(u string) bool {
	return strings.HasPrefix(u, "mongodb://") || strings.HasPrefix(u, "mongodb+srv://")
}

func isHostPort(v string) bool {
	_, p, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(p)
	return err == nil && perr == nil && n >= 1 && n <= 65535
}

func readable(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
