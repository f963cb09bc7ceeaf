// Package config reads the configuration of the reportes binaries from the
// environment (and an optional .env file), once, in main. Variable names are
// compatible with the original service (SQL_*, MONGO_*); full URLs win over
// the parts. Every error names the variable at fault and what it expects.
//
// Each variable is declared once, in Vars (vars.go): name, default,
// description, whether it is a secret, how it is parsed and checked, and
// where in Config it goes. FromEnv, --help (WriteUsage), .env.example and
// the README's table all come from that declaration.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Config is everything the ingestor and the API read from the environment.
type Config struct {
	PostgresURL         string
	EmployeesTable      string
	CodeColumn          string
	RoleColumn          string
	ActiveColumn        string
	Slot                string
	Publication         string
	MongoURI            string
	MongoDB             string
	MongoCollection     string
	WatermarkCollection string
	MongoMode           string
	SellerField         string
	NatsURL             string
	Stream              string
	SubjectPrefix       string
	MetricsPrefix       string
	MetricsStream       string
	LiveInterval        time.Duration
	DeadLetter          string
	CheckpointBucket    string
	Duplicates          time.Duration
	History             string
	Replicas            int
	Port                int
	IngestorPort        int
	APIURL              string
	DebugAddr           string
	IngestorDebug       string
	Title               string
	LogLevel            slog.Level
	LogFormat           string
	APIToken            string
	ViewTable           string
	ViewPostgresURL     string
	ViewStore           string
	ViewSchema          string
	ViewPartitions      int
	ViewUpdatesPrefix   string
	ProjectorPort       int
	LeaseBucket         string
	LeaseTTL            time.Duration
	SnapshotBucket      string
	SnapshotInterval    time.Duration
	RebuildGCPercent    int
	NatsCreds           string
	NatsTLSCA           string
	NatsTLSCert         string
	NatsTLSKey          string
}

// Load reads the configuration. Values already in the environment win over
// the .env file in the working directory, which is optional.
func Load() (Config, error) {
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("read .env: %w", err)
	}
	return FromEnv(os.LookupEnv)
}

// FromEnv builds a Config from lookupEnv (os.LookupEnv in production), by
// the declaration in Vars. A variable set to the empty string is empty,
// not its default. It reports every bad value at once, so that one
// start-up shows all there is to fix.
func FromEnv(lookupEnv func(string) (string, bool)) (Config, error) {
	r := &reader{lookup: lookupEnv, values: make(map[string]string, len(Vars))}
	var t target
	for i := range Vars {
		v := &Vars[i]
		// A variable that gives way is not read at all, not even its
		// NAME_FILE.
		if v.unless != "" && r.value(lookupVar(v.unless)) != "" {
			continue
		}
		if err := v.parse(&t, r.value(v)); err != nil {
			r.bad(v.Name, err)
		}
	}
	r.join(&t)
	if len(r.errs) > 0 {
		return Config{}, fmt.Errorf("configuration: %w", errors.Join(r.errs...))
	}
	return t.Config, nil
}

// reader collects the values and the errors of one FromEnv call.
type reader struct {
	lookup func(string) (string, bool)
	values map[string]string // by name, once read
	errs   []error
}

// value returns the value of v, reading it on first use: from the file
// NAME_FILE names for a secret (Docker and Kubernetes secrets), else as
// set, else the default.
func (r *reader) value(v *Var) string {
	if s, ok := r.values[v.Name]; ok {
		return s
	}
	s := r.read(v)
	r.values[v.Name] = s
	return s
}

func (r *reader) read(v *Var) string {
	if v.secret != nil {
		if path, ok := r.lookup(v.Name + "_FILE"); ok && path != "" {
			data, err := os.ReadFile(path)
			if err != nil {
				r.errs = append(r.errs, fmt.Errorf("%s_FILE=%q: want a readable file: %w", v.Name, path, err))
				return v.Default
			}
			return strings.TrimRight(string(data), "\r\n")
		}
	}
	if s, ok := r.lookup(v.Name); ok {
		return s
	}
	return v.Default
}

// bad records the error of name, with its value (secrets redacted).
func (r *reader) bad(name string, err error) {
	r.errs = append(r.errs, fmt.Errorf("%s=%q: %w", name, shown(name, r.values[name]), err))
}

// join fills what more than one variable decides: the URLs built from the
// seed-compatible parts when no full URL wins over them (Vars skipped the
// parts then), the view's database, and the client certificate's key.
func (r *reader) join(t *target) {
	if t.PostgresURL == "" {
		u := url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s:%d", t.sqlHost, t.sqlPort), Path: "/" + t.sqlDB}
		if t.sqlPassword != "" {
			u.User = url.UserPassword(t.sqlUser, t.sqlPassword)
		} else {
			u.User = url.User(t.sqlUser)
		}
		t.PostgresURL = u.String()
	}
	if t.MongoURI == "" {
		t.MongoURI = fmt.Sprintf("mongodb://%s:%d/", t.mongoHost, t.mongoPort)
	}
	if t.ViewPostgresURL == "" {
		t.ViewPostgresURL = t.PostgresURL
	}
	if (t.NatsTLSCert == "") != (t.NatsTLSKey == "") {
		r.bad("NATS_TLS_CERT", &wantError{want: "to be set together with NATS_TLS_KEY"})
	}
}

// Logger builds the process logger.
func (c Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
