package postgres

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reportes/reportes/pkg/cdc"
)

// permanentCode reports whether a SQLSTATE names a failure that retrying
// cannot heal: someone must change a password, a grant, pg_hba.conf, the
// database or the captured tables first. Everything else (connection
// refused, 57P03 the server is starting or stopping, 53300 too many
// connections, a slot in use...) is retried with backoff.
func permanentCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "28"): // invalid_authorization_specification, invalid_password
		return true
	case code == "42501", // insufficient_privilege: CONNECT, SELECT, REPLICATION, ownership
		code == "3D000", // invalid_catalog_name: the database does not exist
		code == "42P01", // undefined_table
		code == "3F000": // invalid_schema_name
		return true
	}
	return false
}

// classify marks err permanent when PostgreSQL refused something only a
// person can fix, so the supervisor stops instead of retrying for ever.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || errors.Is(err, cdc.ErrPermanent) || !errors.As(err, &pgErr) || !permanentCode(pgErr.Code) {
		return err
	}
	return cdc.Permanent(err)
}

// connectError is a failed connection attempt told in one line: where,
// as whom, and the one cause that matters.
type connectError struct {
	msg   string
	cause error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.cause }

// connectFailure describes a failed connection. pgconn reports every
// attempt it made: with the default sslmode=prefer a server without TLS
// gives "server refused TLS connection" before the real reason, so the
// server's own error is preferred, then the last attempt's. The password is
// never part of it.
func connectFailure(what string, err error) error {
	where := "PostgreSQL"
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Config != nil {
		where = fmt.Sprintf("PostgreSQL at %s as user %q",
			net.JoinHostPort(ce.Config.Host, strconv.Itoa(int(ce.Config.Port))), ce.Config.User)
		if ce.Config.Database != "" {
			where += fmt.Sprintf(" (database %q)", ce.Config.Database)
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := fmt.Sprintf("%s to %s: %s (SQLSTATE %s)", what, where, pgErr.Message, pgErr.Code)
		if pgErr.Detail != "" {
			msg += ": " + pgErr.Detail
		}
		if permanentCode(pgErr.Code) {
			return cdc.Permanent(&connectError{msg: msg, cause: pgErr})
		}
		return &connectError{msg: msg + "; transient, retrying", cause: pgErr}
	}
	cause := lastAttempt(err)
	return &connectError{msg: fmt.Sprintf("%s to %s: %v; transient, retrying", what, where, cause), cause: cause}
}

// lastAttempt returns the error of pgconn's last connection attempt,
// without the address its message repeats.
func lastAttempt(err error) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return err
	}
	cause := ce.Unwrap()
	if joined, ok := cause.(interface{ Unwrap() []error }); ok {
		if errs := joined.Unwrap(); len(errs) > 0 {
			cause = errs[len(errs)-1]
		}
	}
	if inner := errors.Unwrap(cause); inner != nil {
		cause = inner
	}
	return cause
}
