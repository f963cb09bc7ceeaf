package config

import (
	"log/slog"
	"time"
)

// Var declares one variable, once: its name, default and description (for
// --help, .env.example and the README), whether it is a secret, and how its
// value is parsed, checked and stored in the Config.
type Var struct {
	Name, Default, Help string

	// secret is non-nil for a secret: it may then be given as NAME_FILE,
	// and an error shows the value through it (Redact for a URL, hidden
	// for a password or a token).
	secret func(string) string
	// unless names the variable that wins over this one: when that one is
	// set and not empty, this one is neither read nor checked (SQL_* and
	// MONGO_HOST/MONGO_PORT give way to POSTGRES_URL and MONGO_URI).
	unless string
	// example, when set, is a value .env.example shows commented out.
	example string
	parse   parser
}

// section groups variables in .env.example and the README; note, about the
// section as a whole, goes under its title in both.
type section struct {
	title, note string
	vars        []Var
}

// Vars is every variable FromEnv reads, in the order of the documentation.
var Vars = flatten(sections)

// sections is the declaration of the configuration. The README's table and
// .env.example are generated from it: after an edit, run
//
//	go test ./internal/config -run TestGeneratedDocs -update
//
// (the test fails while they are out of date).
var sections = []section{
	{title: "PostgreSQL (employees), compatible with the original service", vars: []Var{
		{Name: "POSTGRES_URL", Help: "PostgreSQL URL of the employees database; wins over SQL_*", secret: Redact, //nolint:gosec // its example is the seed's, shown in .env.example
			example: "postgres://admin:password123@127.0.0.1:5433/empleados_db",
			parse: text(func(t *target) *string { return &t.PostgresURL },
				must("a URL like postgres://user:password@host:5432/db", isPostgresURL))},
		{Name: "SQL_USER", Default: "postgres", Help: "PostgreSQL user (when POSTGRES_URL is unset)", unless: "POSTGRES_URL",
			parse: text(func(t *target) *string { return &t.sqlUser })},
		{Name: "SQL_PASSWORD", Help: "PostgreSQL password", secret: hidden, unless: "POSTGRES_URL",
			parse: text(func(t *target) *string { return &t.sqlPassword })},
		{Name: "SQL_HOST", Default: "127.0.0.1", Help: "PostgreSQL host", unless: "POSTGRES_URL",
			parse: required("a host name", text(func(t *target) *string { return &t.sqlHost }))},
		{Name: "SQL_PORT", Default: "5432", Help: "PostgreSQL port", unless: "POSTGRES_URL",
			parse: port(func(t *target) *int { return &t.sqlPort })},
		{Name: "SQL_DB", Default: "empleados_db", Help: "PostgreSQL database", unless: "POSTGRES_URL",
			parse: required("a database name", text(func(t *target) *string { return &t.sqlDB }))},
		{Name: "EMPLOYEES_TABLE", Default: "public.empleados", Help: "schema-qualified employees table",
			parse: required("a schema-qualified table like public.empleados", text(func(t *target) *string { return &t.EmployeesTable },
				table("a schema-qualified table like public.empleados", 0)))},
		// Role and active may be empty, for tables without them.
		{Name: "EMPLOYEE_CODE_COLUMN", Default: "codigo", Help: "column holding the employee code orders refer to",
			parse: required("a value", text(func(t *target) *string { return &t.CodeColumn },
				because("a column name like codigo (empty: none)", checkIdentifier)))},
		{Name: "EMPLOYEE_ROLE_COLUMN", Default: "rol", Help: "column holding the role (empty: none)",
			parse: text(func(t *target) *string { return &t.RoleColumn },
				because("a column name like rol (empty: none)", checkIdentifier))},
		{Name: "EMPLOYEE_ACTIVE_COLUMN", Default: "activo", Help: "boolean column: Activo/Inactivo (empty: none)",
			parse: text(func(t *target) *string { return &t.ActiveColumn },
				because("a column name like activo (empty: none)", checkIdentifier))},
		{Name: "PG_SLOT", Default: "reportes", Help: "logical replication slot name",
			parse: required("a value", text(func(t *target) *string { return &t.Slot },
				because("a replication slot name like reportes", checkSlot)))},
		{Name: "PG_PUBLICATION", Default: "reportes", Help: "publication name",
			parse: required("a value", text(func(t *target) *string { return &t.Publication },
				because("a publication name like reportes", checkIdentifier)))},
	}},
	{title: "MongoDB (orders), compatible with the original service", vars: []Var{
		{Name: "MONGO_URI", Help: "MongoDB URI; wins over MONGO_HOST/MONGO_PORT", secret: Redact,
			example: "mongodb://127.0.0.1:27017/?replicaSet=rs0",
			parse:   text(func(t *target) *string { return &t.MongoURI }, must("a URI like mongodb://host:27017", isMongoURI))},
		{Name: "MONGO_HOST", Default: "127.0.0.1", Help: "MongoDB host (when MONGO_URI is unset)", unless: "MONGO_URI",
			parse: required("a host name", text(func(t *target) *string { return &t.mongoHost }))},
		{Name: "MONGO_PORT", Default: "27017", Help: "MongoDB port", unless: "MONGO_URI",
			parse: port(func(t *target) *int { return &t.mongoPort })},
		{Name: "MONGO_DB", Default: "inventory_db", Help: "MongoDB database of the orders",
			parse: required("a value", text(func(t *target) *string { return &t.MongoDB },
				because("a MongoDB database name like inventory_db", checkMongoDB)))},
		{Name: "MONGO_COLLECTION", Default: "orders", Help: "MongoDB collection of the orders",
			parse: required("a value", text(func(t *target) *string { return &t.MongoCollection },
				because("a MongoDB collection name like orders", checkCollection)))},
		{Name: "MONGO_WATERMARK_COLLECTION", Default: "reportes_watermarks", Help: "collection of MONGO_DB that backfill watermarks are written to (the role needs insert and remove on it)",
			parse: required("a value", text(func(t *target) *string { return &t.WatermarkCollection },
				because("a MongoDB collection name like reportes_watermarks", checkCollection)))},
		{Name: "MONGO_CAPTURE_MODE", Default: "auto", Help: "changestream, oplog or auto (change streams when the server has them, oplog tailing otherwise)",
			parse: oneOf(func(t *target) *string { return &t.MongoMode }, "auto, changestream or oplog", "auto", "changestream", "oplog")},
		{Name: "ORDER_SELLER_FIELD", Default: "vendedor", Help: "path of the seller code in an order (dots descend into embedded documents)",
			parse: required("a value", text(func(t *target) *string { return &t.SellerField },
				because("a field name or dotted path like vendedor or vendedor.codigo", checkFieldPath)))},
	}},
	{title: "NATS JetStream", note: "NATS_URL is one URL or a comma-separated list: nats://, tls://, ws:// or wss:// " +
		"(not mixing websocket and plain ones), or host:port alone; user:password@ or token@ may precede the host.", vars: []Var{
		{Name: "NATS_URL", Default: "nats://127.0.0.1:4222", Help: "NATS server URL(s), comma separated", secret: Redact,
			parse: required("a value", text(func(t *target) *string { return &t.NatsURL },
				because("NATS URLs like nats://127.0.0.1:4222, comma separated (nats, tls, ws, wss or host:port)", checkNATSURL)))},
		{Name: "NATS_STREAM", Default: "REPORTES_CDC", Help: "JetStream stream of change events",
			parse: required("a value", text(func(t *target) *string { return &t.Stream },
				because("a stream name like REPORTES_CDC", checkStream)))},
		{Name: "NATS_SUBJECT_PREFIX", Default: "reportes.cdc", Help: "subject prefix of change events",
			parse: required("a value", text(func(t *target) *string { return &t.SubjectPrefix },
				because("a subject without wildcards like reportes.cdc", checkSubject)))},
		{Name: "NATS_METRICS_PREFIX", Default: "reportes.metrics", Help: "subject prefix of metric updates (empty: off)",
			parse: text(func(t *target) *string { return &t.MetricsPrefix },
				because("a subject without wildcards like reportes.metrics, or empty for off", checkSubject))},
		{Name: "NATS_METRICS_STREAM", Default: "REPORTES_METRICS", Help: "JetStream stream of metric updates, the last per subject; the API creates it",
			parse: required("a value", text(func(t *target) *string { return &t.MetricsStream },
				because("a stream name like REPORTES_METRICS", checkStream)))},
		{Name: "LIVE_INTERVAL", Default: "100ms", Help: "during a burst, at most one metric update per subject and one event per stream client this often; a change after a quiet interval goes out at once (0: every change)",
			parse: duration(func(t *target) *time.Duration { return &t.LiveInterval }, 0, "a duration like 100ms, or 0 for every change")},
		{Name: "NATS_DEAD_LETTER_SUBJECT", Default: "reportes.deadletter", Help: "subject of events the view could not apply (empty: off)",
			parse: text(func(t *target) *string { return &t.DeadLetter },
				because("a subject without wildcards like reportes.deadletter, or empty for off", checkSubject))},
		{Name: "NATS_CHECKPOINT_BUCKET", Default: "reportes_positions", Help: "key-value bucket of source positions",
			parse: required("a value", text(func(t *target) *string { return &t.CheckpointBucket },
				because("a bucket name like reportes_positions", checkBucket)))},
		{Name: "NATS_DUPLICATE_WINDOW", Default: "2m", Help: "stream deduplication window",
			parse: duration(func(t *target) *time.Duration { return &t.Duplicates }, time.Nanosecond, "a positive duration like 2m")},
		{Name: "NATS_HISTORY", Default: "compact", Help: "what the ingestor's stream keeps when it creates it: compact (the last event of each key, so its size follows the live data) or all (every event); an existing stream keeps its own",
			parse: oneOf(func(t *target) *string { return &t.History }, "compact or all", "compact", "all")},
		{Name: "NATS_REPLICAS", Default: "1", Help: "replicas (1 to 5) of the stream and buckets when the services create them; existing ones keep theirs",
			parse: number(func(t *target) *int { return &t.Replicas }, 1, 5, "a number of replicas from 1 to 5")},
	}},
	{title: "Processes", note: "Keep the Go profiles (DEBUG_ADDR, INGESTOR_DEBUG_ADDR) private: 127.0.0.1 or an internal network; " +
		"API_TOKEN applies to them too.", vars: []Var{
		{Name: "PORT", Default: "8002", Help: "API listen port",
			parse: port(func(t *target) *int { return &t.Port })},
		{Name: "INGESTOR_PORT", Default: "8003", Help: "ingestor health and metrics port",
			parse: port(func(t *target) *int { return &t.IngestorPort })},
		{Name: "API_URL", Help: "URL of the running API that `api rebuild` talks to (default: http://127.0.0.1:PORT)",
			parse: text(func(t *target) *string { return &t.APIURL }, must("an http:// or https:// URL like http://127.0.0.1:8002, or empty", isHTTPURL))},
		{Name: "DEBUG_ADDR", Help: "when set (host:port, like 127.0.0.1:6060), the API serves Go profiles under /debug/pprof/ on this address of its own; keep it private",
			parse: text(func(t *target) *string { return &t.DebugAddr }, must("host:port like 127.0.0.1:6060, or empty for off", isHostPort))},
		{Name: "INGESTOR_DEBUG_ADDR", Help: "the same for the ingestor",
			parse: text(func(t *target) *string { return &t.IngestorDebug }, must("host:port like 127.0.0.1:6060, or empty for off", isHostPort))},
		{Name: "DASHBOARD_TITLE", Default: "Dashboard Operativo - Sprint 4", Help: "title of the dashboard",
			parse: text(func(t *target) *string { return &t.Title })},
		{Name: "LOG_LEVEL", Default: "info", Help: "debug, info, warn or error",
			parse: logLevel(func(t *target) *slog.Level { return &t.LogLevel }, "debug, info, warn or error")},
		{Name: "LOG_FORMAT", Default: "json", Help: "json or text",
			parse: oneOf(func(t *target) *string { return &t.LogFormat }, "json or text", "json", "text")},
	}},
	{title: "Security (optional)", note: "See docs/operations.md. TLS for PostgreSQL and MongoDB goes in their URLs (sslmode=verify-full, tls=true).", vars: []Var{
		{Name: "API_TOKEN", Help: "when set, every endpoint but /healthz and /readyz requires Authorization: Bearer <token>", secret: hidden,
			parse: text(func(t *target) *string { return &t.APIToken })},
		{Name: "NATS_CREDS", Help: "NATS credentials file (JWT and NKey)",
			parse: text(func(t *target) *string { return &t.NatsCreds }, must("a readable file", readable))},
		{Name: "NATS_TLS_CA", Help: "CA certificate file to verify the NATS server",
			parse: text(func(t *target) *string { return &t.NatsTLSCA }, must("a readable file", readable))},
		{Name: "NATS_TLS_CERT", Help: "client certificate file for NATS mutual TLS (with NATS_TLS_KEY)",
			parse: text(func(t *target) *string { return &t.NatsTLSCert }, must("a readable file", readable))},
		{Name: "NATS_TLS_KEY", Help: "client key file for NATS mutual TLS",
			parse: text(func(t *target) *string { return &t.NatsTLSKey }, must("a readable file", readable))},
	}},
	{title: "Copy of the view in PostgreSQL (optional)", vars: []Var{
		// The API also creates <table>_estado: the name must leave room for it.
		{Name: "VIEW_TABLE", Help: "when set (schema.table), the API also keeps a copy of the dashboard in this PostgreSQL table (and in <table>_estado) for SQL readers",
			parse: text(func(t *target) *string { return &t.ViewTable },
				table("a schema-qualified table like public.reportes_dashboard", len("_estado")))},
		{Name: "VIEW_POSTGRES_URL", Help: "database of VIEW_TABLE (default: the employees database)", secret: Redact,
			parse: text(func(t *target) *string { return &t.ViewPostgresURL },
				must("a URL like postgres://user:password@host:5432/db, or empty for the employees database", isPostgresURL))},
	}},
	{title: "View store: beyond one machine (optional)", note: "See docs/scaling.md. With VIEW_STORE=postgres, cmd/projector instances keep the view in PostgreSQL " +
		"(VIEW_POSTGRES_URL) and the API replicas serve it from memory, O(sellers).", vars: []Var{
		{Name: "VIEW_STORE", Default: "memory", Help: "memory: every API replica rebuilds the whole view from the stream; postgres: projectors keep it in PostgreSQL tables and API replicas hold only the per-seller rows",
			parse: oneOf(func(t *target) *string { return &t.ViewStore }, "memory or postgres", "memory", "postgres")},
		{Name: "VIEW_SCHEMA", Default: "reportes_view", Help: "PostgreSQL schema of the view store (created and migrated at start-up)",
			parse: required("a schema name", text(func(t *target) *string { return &t.ViewSchema },
				because("a schema name like reportes_view", checkIdentifier)))},
		{Name: "VIEW_PARTITIONS", Default: "1", Help: "partitions of the order keys, fixed when the store is created: at least the number of projectors you will run",
			parse: number(func(t *target) *int { return &t.ViewPartitions }, 1, 256, "a number of partitions from 1 to 256")},
		{Name: "VIEW_UPDATES_PREFIX", Default: "reportes.view", Help: "subject prefix of the deltas projectors publish for the API replicas (<prefix>.<partition>, core NATS)",
			parse: required("a subject prefix", text(func(t *target) *string { return &t.ViewUpdatesPrefix },
				because("a subject prefix like reportes.view", checkSubject)))},
		{Name: "PROJECTOR_PORT", Default: "8004", Help: "projector health and metrics port",
			parse: port(func(t *target) *int { return &t.ProjectorPort })},
	}},
	{title: "Leases (high availability)", note: "Run several ingestors and projectors with the same settings: one ingestor captures each source, the others stand by; " +
		"projectors share the view store's partitions. See docs/operations.md (Failover).", vars: []Var{
		{Name: "LEASE_BUCKET", Default: "reportes_leases", Help: "JetStream key-value bucket of the leases ingestors take on sources and projectors on partitions",
			parse: required("a bucket name", text(func(t *target) *string { return &t.LeaseBucket },
				because("a bucket name like reportes_leases", checkBucket)))},
		{Name: "LEASE_TTL", Default: "3s", Help: "how long a lease outlives its holder's last renewal: a dead ingestor's sources and a dead projector's partitions are taken over after about this long",
			parse: duration(func(t *target) *time.Duration { return &t.LeaseTTL }, time.Second, "a duration of at least 1s like 5s")},
	}},
	{title: "View snapshots", vars: []Var{
		{Name: "VIEW_SNAPSHOT_BUCKET", Default: "reportes_view", Help: "JetStream object store bucket of view snapshots, from which the API starts instead of replaying the whole stream (empty: off)",
			parse: text(func(t *target) *string { return &t.SnapshotBucket },
				because("a bucket name like reportes_view, or empty for off", checkBucket))},
		{Name: "VIEW_SNAPSHOT_INTERVAL", Default: "1m", Help: "how often the API saves a view snapshot once ready, and when it stops (0: off)",
			parse: duration(func(t *target) *time.Duration { return &t.SnapshotInterval }, 0, "a duration like 1m, or 0 to disable")},
		{Name: "REBUILD_GC_PERCENT", Default: "400", Help: "GC percent (as GOGC) while the API replays the stream into its view, until ready: higher saves CPU for decoding, " +
			"the memory peak grows; when ready, the previous one is restored and memory given back to the OS (0: off, GOGC throughout; -1: collect only near GOMEMLIMIT until ready)",
			parse: number(func(t *target) *int { return &t.RebuildGCPercent }, -1, 10000, "a GC percent from 1 to 10000 like 400, 0 for off or -1 for no collection until ready")},
	}},
}

func flatten(ss []section) []Var {
	var vars []Var
	for _, s := range ss {
		vars = append(vars, s.vars...)
	}
	return vars
}

// lookupVar returns the declaration of name, or nil.
func lookupVar(name string) *Var {
	for i := range Vars {
		if Vars[i].Name == name {
			return &Vars[i]
		}
	}
	return nil
}
