// Package config reads the configuration of the reportes binaries from the
// environment (and an optional .env file), once, in main. Variable names are
// compatible with the original service (SQL_*, MONGO_*); full URLs win over
// the parts. Every error names the variable at fault and what it expects.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Config is everything the ingestor and the API read from the environment.
type Config struct {
	PostgresURL      string
	EmployeesTable   string
	CodeColumn       string
	RoleColumn       string
	ActiveColumn     string
	Slot             string
	Publication      string
	MongoURI         string
	MongoDB          string
	MongoCollection  string
	MongoMode        string
	SellerField      string
	NatsURL          string
	Stream           string
	SubjectPrefix    string
	MetricsPrefix    string
	DeadLetter       string
	CheckpointBucket string
	Duplicates       time.Duration
	Replicas         int
	Port             int
	IngestorPort     int
	DebugAddr        string
	IngestorDebug    string
	Title            string
	LogLevel         slog.Level
	LogFormat        string
	APIToken         string
	ViewTable        string
	ViewPostgresURL  string
	SnapshotBucket   string
	SnapshotInterval time.Duration
	NatsCreds        string
	NatsTLSCA        string
	NatsTLSCert      string
	NatsTLSKey       string
}

// Var documents one variable; Vars lists them all (the README and
// .env.example are checked against it).
type Var struct {
	Name, Default, Help string
}

// Vars is every variable Load reads.
var Vars = []Var{
	{"POSTGRES_URL", "", "PostgreSQL URL of the employees database; wins over SQL_*"},
	{"SQL_USER", "postgres", "PostgreSQL user (when POSTGRES_URL is unset)"},
	{"SQL_PASSWORD", "", "PostgreSQL password"},
	{"SQL_HOST", "127.0.0.1", "PostgreSQL host"},
	{"SQL_PORT", "5432", "PostgreSQL port"},
	{"SQL_DB", "empleados_db", "PostgreSQL database"},
	{"EMPLOYEES_TABLE", "public.empleados", "schema-qualified employees table"},
	{"EMPLOYEE_CODE_COLUMN", "codigo", "column holding the employee code orders refer to"},
	{"EMPLOYEE_ROLE_COLUMN", "rol", "column holding the role"},
	{"EMPLOYEE_ACTIVE_COLUMN", "activo", "boolean column: Activo/Inactivo"},
	{"PG_SLOT", "reportes", "logical replication slot name"},
	{"PG_PUBLICATION", "reportes", "publication name"},
	{"MONGO_URI", "", "MongoDB URI; wins over MONGO_HOST/MONGO_PORT"},
	{"MONGO_HOST", "127.0.0.1", "MongoDB host"},
	{"MONGO_PORT", "27017", "MongoDB port"},
	{"MONGO_DB", "inventory_db", "MongoDB database of the orders"},
	{"MONGO_COLLECTION", "orders", "MongoDB collection of the orders"},
	{"MONGO_CAPTURE_MODE", "auto", "auto, changestream or oplog"},
	{"ORDER_SELLER_FIELD", "vendedor", "path of the seller code in an order (dots descend)"},
	{"NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma separated"},
	{"NATS_STREAM", "REPORTES_CDC", "JetStream stream of change events"},
	{"NATS_SUBJECT_PREFIX", "reportes.cdc", "subject prefix of change events"},
	{"NATS_METRICS_PREFIX", "reportes.metrics", "subject prefix of metric updates (empty: off)"},
	{"NATS_DEAD_LETTER_SUBJECT", "reportes.deadletter", "subject of events the view could not apply (empty: off)"},
	{"NATS_CHECKPOINT_BUCKET", "reportes_positions", "key-value bucket of source positions"},
	{"NATS_DUPLICATE_WINDOW", "2m", "stream deduplication window"},
	{"NATS_REPLICAS", "1", "replicas (1 to 5) of the stream and buckets when the services create them; existing ones keep theirs"},
	{"PORT", "8002", "API listen port"},
	{"INGESTOR_PORT", "8003", "ingestor health and metrics port"},
	{"DEBUG_ADDR", "", "when set (host:port, like 127.0.0.1:6060), the API serves Go profiles under /debug/pprof/ on this address of its own; keep it private"},
	{"INGESTOR_DEBUG_ADDR", "", "the same for the ingestor"},
	{"DASHBOARD_TITLE", "Dashboard Operativo - Sprint 4", "dashboard titulo"},
	{"VIEW_TABLE", "", "when set (schema.table), the API also keeps a copy of the dashboard in this PostgreSQL table"},
	{"VIEW_POSTGRES_URL", "", "database of VIEW_TABLE (default: the employees database)"},
	{"VIEW_SNAPSHOT_BUCKET", "reportes_view", "JetStream object store bucket of view snapshots, from which the API starts instead of replaying the whole stream (empty: off)"},
	{"VIEW_SNAPSHOT_INTERVAL", "1m", "how often the API saves a view snapshot once ready, and when it stops (0: off)"},
	{"API_TOKEN", "", "when set, every endpoint but /healthz and /readyz requires Authorization: Bearer <token>"},
	{"NATS_CREDS", "", "NATS credentials file (JWT and NKey)"},
	{"NATS_TLS_CA", "", "CA certificate file to verify the NATS server"},
	{"NATS_TLS_CERT", "", "client certificate file for NATS mutual TLS"},
	{"NATS_TLS_KEY", "", "client key file for NATS mutual TLS"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"LOG_FORMAT", "json", "json or text"},
}

// Load reads the configuration. Values already in the environment win over
// the .env file in the working directory, which is optional.
func Load() (Config, error) {
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("read .env: %w", err)
	}
	return FromEnv(os.LookupEnv)
}

// secrets may also be given as NAME_FILE, the path of a file holding the
// value (Docker and Kubernetes secrets).
var secrets = map[string]bool{"SQL_PASSWORD": true, "POSTGRES_URL": true, "VIEW_POSTGRES_URL": true, "MONGO_URI": true, "API_TOKEN": true, "NATS_URL": true}

// FromEnv builds a Config from lookupEnv (os.LookupEnv in production). A
// variable set to the empty string is empty, not its default. It reports
// every bad value at once, so that one start-up shows all there is to fix.
func FromEnv(lookupEnv func(string) (string, bool)) (Config, error) {
	r := &reader{}
	r.lookup = withSecretFiles(lookupEnv, &r.errs)
	c := r.names()
	r.required()
	r.processes(&c)
	r.postgres(&c)
	r.mongo(&c)
	r.nats(&c)
	r.view(&c)
	r.logging(&c)
	if len(r.errs) > 0 {
		return Config{}, fmt.Errorf("configuration: %w", errors.Join(r.errs...))
	}
	return c, nil
}

// reader collects the errors of one FromEnv call.
type reader struct {
	lookup func(string) (string, bool)
	errs   []error
}

// get returns the variable, or its default from Vars when unset.
func (r *reader) get(name string) string {
	if v, ok := r.lookup(name); ok {
		return v
	}
	return defaultOf(name)
}

// bad records that name holds a value other than want, showing the value
// as set (secrets redacted), not the default.
func (r *reader) bad(name, want string) {
	v, _ := r.lookup(name)
	r.errs = append(r.errs, fmt.Errorf("%s=%q: want %s", name, shown(name, v), want))
}

// badBecause is bad with the reason a longer value failed (which entry of
// a list, which part of a name).
func (r *reader) badBecause(name, want string, reason error) {
	v, _ := r.lookup(name)
	r.errs = append(r.errs, fmt.Errorf("%s=%q: want %s: %w", name, shown(name, v), want, reason))
}

func (r *reader) port(name string) int {
	n, err := strconv.Atoi(r.get(name))
	if err != nil || n < 1 || n > 65535 {
		r.bad(name, "a port number between 1 and 65535")
	}
	return n
}

// names reads the plain values, checked by the functions that follow.
func (r *reader) names() Config {
	get := r.get
	return Config{
		EmployeesTable:   get("EMPLOYEES_TABLE"),
		CodeColumn:       get("EMPLOYEE_CODE_COLUMN"),
		RoleColumn:       get("EMPLOYEE_ROLE_COLUMN"),
		ActiveColumn:     get("EMPLOYEE_ACTIVE_COLUMN"),
		Slot:             get("PG_SLOT"),
		Publication:      get("PG_PUBLICATION"),
		MongoDB:          get("MONGO_DB"),
		MongoCollection:  get("MONGO_COLLECTION"),
		MongoMode:        strings.ToLower(get("MONGO_CAPTURE_MODE")),
		SellerField:      get("ORDER_SELLER_FIELD"),
		NatsURL:          get("NATS_URL"),
		Stream:           get("NATS_STREAM"),
		SubjectPrefix:    get("NATS_SUBJECT_PREFIX"),
		MetricsPrefix:    get("NATS_METRICS_PREFIX"),
		DeadLetter:       get("NATS_DEAD_LETTER_SUBJECT"),
		CheckpointBucket: get("NATS_CHECKPOINT_BUCKET"),
		Title:            get("DASHBOARD_TITLE"),
		LogFormat:        strings.ToLower(get("LOG_FORMAT")),
		APIToken:         get("API_TOKEN"),
		ViewTable:        get("VIEW_TABLE"),
		ViewPostgresURL:  get("VIEW_POSTGRES_URL"),
		SnapshotBucket:   get("VIEW_SNAPSHOT_BUCKET"),
		NatsCreds:        get("NATS_CREDS"),
		NatsTLSCA:        get("NATS_TLS_CA"),
		NatsTLSCert:      get("NATS_TLS_CERT"),
		NatsTLSKey:       get("NATS_TLS_KEY"),
	}
}

// required reports the variables that must not be empty, with today's
// message; the checks of their form then skip empty values.
func (r *reader) required() {
	for _, name := range []string{"EMPLOYEE_CODE_COLUMN", "MONGO_DB", "MONGO_COLLECTION", "ORDER_SELLER_FIELD", "NATS_URL", "NATS_STREAM", "NATS_SUBJECT_PREFIX", "PG_SLOT", "PG_PUBLICATION", "NATS_CHECKPOINT_BUCKET"} {
		if r.get(name) == "" {
			r.bad(name, "a value")
		}
	}
}

// check records name's error from fn, unless the value is empty (required
// reports those).
func (r *reader) check(name, value, want string, fn func(string) error) {
	if value == "" {
		return
	}
	if err := fn(value); err != nil {
		r.badBecause(name, want, err)
	}
}

func (r *reader) processes(c *Config) {
	c.Port = r.port("PORT")
	c.IngestorPort = r.port("INGESTOR_PORT")
	hostPort := func(name string) string {
		v := r.get(name)
		if v == "" {
			return ""
		}
		_, p, err := net.SplitHostPort(v)
		if n, perr := strconv.Atoi(p); err != nil || perr != nil || n < 1 || n > 65535 {
			r.bad(name, "host:port like 127.0.0.1:6060, or empty for off")
		}
		return v
	}
	c.DebugAddr = hostPort("DEBUG_ADDR")
	c.IngestorDebug = hostPort("INGESTOR_DEBUG_ADDR")
}

func (r *reader) postgres(c *Config) {
	if u := r.get("POSTGRES_URL"); u != "" {
		if !isPostgresURL(u) {
			r.bad("POSTGRES_URL", "a URL like postgres://user:password@host:5432/db")
		}
		c.PostgresURL = u
	} else {
		p := r.port("SQL_PORT")
		if r.get("SQL_HOST") == "" {
			r.bad("SQL_HOST", "a host name")
		}
		if r.get("SQL_DB") == "" {
			r.bad("SQL_DB", "a database name")
		}
		u := url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s:%d", r.get("SQL_HOST"), p), Path: "/" + r.get("SQL_DB")}
		if pw := r.get("SQL_PASSWORD"); pw != "" {
			u.User = url.UserPassword(r.get("SQL_USER"), pw)
		} else {
			u.User = url.User(r.get("SQL_USER"))
		}
		c.PostgresURL = u.String()
	}
	if strings.Count(c.EmployeesTable, ".") != 1 {
		r.bad("EMPLOYEES_TABLE", "a schema-qualified table like public.empleados")
	} else if err := checkTable(c.EmployeesTable, 0); err != nil {
		r.badBecause("EMPLOYEES_TABLE", "a schema-qualified table like public.empleados", err)
	}
	// Role and active may be empty, for tables without them.
	for _, name := range []string{"EMPLOYEE_CODE_COLUMN", "EMPLOYEE_ROLE_COLUMN", "EMPLOYEE_ACTIVE_COLUMN"} {
		r.check(name, r.get(name), "a column name like "+defaultOf(name)+" (empty: none)", checkIdentifier)
	}
	r.check("PG_SLOT", c.Slot, "a replication slot name like reportes", checkSlot)
	r.check("PG_PUBLICATION", c.Publication, "a publication name like reportes", checkIdentifier)
}

func (r *reader) mongo(c *Config) {
	if u := r.get("MONGO_URI"); u != "" {
		if !strings.HasPrefix(u, "mongodb://") && !strings.HasPrefix(u, "mongodb+srv://") {
			r.bad("MONGO_URI", "a URI like mongodb://host:27017")
		}
		c.MongoURI = u
	} else {
		p := r.port("MONGO_PORT")
		if r.get("MONGO_HOST") == "" {
			r.bad("MONGO_HOST", "a host name")
		}
		c.MongoURI = fmt.Sprintf("mongodb://%s:%d/", r.get("MONGO_HOST"), p)
	}
	switch c.MongoMode {
	case "auto", "changestream", "oplog":
	default:
		r.bad("MONGO_CAPTURE_MODE", "auto, changestream or oplog")
	}
	r.check("MONGO_DB", c.MongoDB, "a MongoDB database name like inventory_db", checkMongoDB)
	r.check("MONGO_COLLECTION", c.MongoCollection, "a MongoDB collection name like orders", checkCollection)
	r.check("ORDER_SELLER_FIELD", c.SellerField, "a field name or dotted path like vendedor or vendedor.codigo", checkFieldPath)
}

func (r *reader) nats(c *Config) {
	r.check("NATS_URL", c.NatsURL, "NATS URLs like nats://127.0.0.1:4222, comma separated (nats, tls, ws, wss or host:port)", checkNATSURL)
	r.check("NATS_STREAM", c.Stream, "a stream name like REPORTES_CDC", checkStream)
	// Empty metric and dead-letter subjects turn them off; an empty
	// subject prefix is reported by required.
	r.check("NATS_SUBJECT_PREFIX", c.SubjectPrefix, "a subject without wildcards like reportes.cdc", checkSubject)
	r.check("NATS_METRICS_PREFIX", c.MetricsPrefix, "a subject without wildcards like reportes.metrics, or empty for off", checkSubject)
	r.check("NATS_DEAD_LETTER_SUBJECT", c.DeadLetter, "a subject without wildcards like reportes.deadletter, or empty for off", checkSubject)
	r.check("NATS_CHECKPOINT_BUCKET", c.CheckpointBucket, "a bucket name like reportes_positions", checkBucket)
	if d, err := time.ParseDuration(r.get("NATS_DUPLICATE_WINDOW")); err != nil || d <= 0 {
		r.bad("NATS_DUPLICATE_WINDOW", "a positive duration like 2m")
	} else {
		c.Duplicates = d
	}
	if n, err := strconv.Atoi(r.get("NATS_REPLICAS")); err != nil || n < 1 || n > 5 {
		r.bad("NATS_REPLICAS", "a number of replicas from 1 to 5")
	} else {
		c.Replicas = n
	}
	r.natsFiles(c)
}

func (r *reader) natsFiles(c *Config) {
	if (c.NatsTLSCert == "") != (c.NatsTLSKey == "") {
		r.bad("NATS_TLS_CERT", "to be set together with NATS_TLS_KEY")
	}
	for _, name := range []string{"NATS_CREDS", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY"} {
		if f := r.get(name); f != "" {
			if _, err := os.Stat(f); err != nil {
				r.bad(name, "a readable file")
			}
		}
	}
}

func (r *reader) view(c *Config) {
	if c.ViewTable != "" && strings.Count(c.ViewTable, ".") != 1 {
		r.bad("VIEW_TABLE", "a schema-qualified table like public.reportes_dashboard")
	} else {
		// The API also creates <table>_estado: the name must fit with it.
		r.check("VIEW_TABLE", c.ViewTable, "a schema-qualified table like public.reportes_dashboard",
			func(v string) error { return checkTable(v, len("_estado")) })
	}
	if c.ViewPostgresURL == "" {
		c.ViewPostgresURL = c.PostgresURL
	} else if !isPostgresURL(c.ViewPostgresURL) {
		r.bad("VIEW_POSTGRES_URL", "a URL like postgres://user:password@host:5432/db, or empty for the employees database")
	}
	r.check("VIEW_SNAPSHOT_BUCKET", c.SnapshotBucket, "a bucket name like reportes_view, or empty for off", checkBucket)
	if d, err := time.ParseDuration(r.get("VIEW_SNAPSHOT_INTERVAL")); err != nil || d < 0 {
		r.bad("VIEW_SNAPSHOT_INTERVAL", "a duration like 1m, or 0 to disable")
	} else {
		c.SnapshotInterval = d
	}
}

func (r *reader) logging(c *Config) {
	if err := c.LogLevel.UnmarshalText([]byte(r.get("LOG_LEVEL"))); err != nil {
		r.bad("LOG_LEVEL", "debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		r.bad("LOG_FORMAT", "json or text")
	}
}

func isPostgresURL(u string) bool {
	pu, err := url.Parse(u)
	return err == nil && (pu.Scheme == "postgres" || pu.Scheme == "postgresql")
}

// defaultOf returns the default of a variable of Vars.
func defaultOf(name string) string {
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}

func withSecretFiles(lookupEnv func(string) (string, bool), errs *[]error) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if secrets[name] {
			if path, ok := lookupEnv(name + "_FILE"); ok && path != "" {
				data, err := os.ReadFile(path)
				if err != nil {
					*errs = append(*errs, fmt.Errorf("%s_FILE=%q: want a readable file: %w", name, path, err))
					return "", false
				}
				return strings.TrimRight(string(data), "\r\n"), true
			}
		}
		return lookupEnv(name)
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
