package config

import (
	"net/url"
	"strings"
)

// Redact hides the secrets of a URL, or of a comma-separated list of them
// (NATS_URL, a MongoDB seed list), for logs and errors: passwords, a NATS
// token (a user without a password), password parameters, and the
// credentials of an entry without a scheme (user:pass@host:4222, which
// nats.go accepts).
func Redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = redactOne(p)
	}
	return strings.Join(parts, ",")
}

func redactOne(p string) string {
	if !strings.Contains(p, "://") {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			return "xxxxx" + p[at:]
		}
		// A key=value connection string may hold password=...
		if strings.Contains(strings.ToLower(p), "password") {
			return "xxxxx"
		}
		return p
	}
	u, err := url.Parse(p)
	if err != nil {
		return "<unparseable URL>"
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); !hasPassword && isNATSScheme(u.Scheme) {
			u.User = url.User("xxxxx")
		}
	}
	// PostgreSQL and MongoDB also take passwords as parameters
	// (?password=, tlsCertificateKeyFilePassword=).
	if q := u.Query(); strings.Contains(strings.ToLower(u.RawQuery), "password") {
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func isNATSScheme(s string) bool {
	return s == "nats" || s == "tls" || s == "ws" || s == "wss"
}

// shown is the value of a variable as an error may print it.
func shown(name, value string) string {
	if v := lookupVar(name); v != nil && v.secret != nil {
		return v.secret(value)
	}
	return value
}

// hidden shows nothing of a password or a token.
func hidden(string) string { return "xxxxx" }
