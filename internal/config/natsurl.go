package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// checkNATSURL reads NATS_URL the way nats.Connect does (processUrlString,
// then parseServerURL for each entry), so that what nats.go would refuse,
// or silently dial somewhere unintended, stops start-up instead of the
// binaries retrying a bad address for ever (they connect with
// RetryOnFailedConnect). Where nats.go is lenient it is stricter: an empty
// entry (a,,b), an unknown scheme or a path on nats:// is a typo, not
// something to ignore. Reasons never hold a password: entries are redacted,
// and url.Parse's errors, which quote the whole URL, are not wrapped.
func checkNATSURL(raw string) error {
	entries := strings.Split(raw, ",")
	var ws bool
	for i, entry := range entries {
		e := strings.TrimSpace(entry)
		if e == "" {
			return fmt.Errorf("entry %d of %d is empty", i+1, len(entries))
		}
		u, err := parseNATSEntry(e, ws)
		if err != nil && len(entries) == 1 {
			return err
		} else if err != nil {
			return fmt.Errorf("%s: %w", Redact(e), err)
		}
		// nats.go takes websocket-ness from the first URL and refuses a
		// list that mixes them (ErrMixingWebsocketSchemes).
		isWS := u.Scheme == "ws" || u.Scheme == "wss"
		if i == 0 {
			ws = isWS
		} else if isWS != ws {
			return fmt.Errorf("%s: websocket and non-websocket URLs cannot be mixed", Redact(e))
		}
	}
	return nil
}

// parseNATSEntry is nats.go's parseServerURL, with the checks it leaves to
// the dial: an entry without :// gets the scheme of the list (nats, or ws
// after a websocket URL); the port defaults (4222, 80, 443).
func parseNATSEntry(e string, ws bool) (*url.URL, error) {
	if !strings.Contains(e, "://") {
		scheme := "nats"
		if ws {
			scheme = "ws"
		}
		e = scheme + "://" + e
	}
	u, err := url.Parse(e)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return nil, fmt.Errorf("scheme %q is not nats, tls, ws or wss", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %s is not between 1 and 65535", p)
		}
	}
	// nats.go ignores the path of nats:// and tls:// URLs (a websocket URL
	// may have one): a path there is a mistyped URL, like htp:/oops.
	if u.Scheme != "ws" && u.Scheme != "wss" && u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("unexpected path %q (want host:port)", u.Path)
	}
	return u, nil
}
