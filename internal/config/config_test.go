package config

import (
	"os"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaultsAndSeedVariables(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"SQL_USER": "admin", "SQL_PASSWORD": "p@ss/word", "SQL_HOST": "db", "SQL_PORT": "5433", "SQL_DB": "empleados_db",
		"MONGO_HOST": "mongo", "MONGO_PORT": "27018", "MONGO_DB": "inventory_db", "MONGO_COLLECTION": "orders",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PostgresURL != "postgres://admin:p%40ss%2Fword@db:5433/empleados_db" {
		t.Errorf("PostgresURL = %s", c.PostgresURL)
	}
	if c.MongoURI != "mongodb://mongo:27018/" || c.Port != 8002 || c.NatsURL != "nats://127.0.0.1:4222" {
		t.Errorf("config = %+v", c)
	}
	if c.EmployeesTable != "public.empleados" || c.SellerField != "vendedor" || c.Title != "Dashboard Operativo - Sprint 4" {
		t.Errorf("schema = %+v", c)
	}
}

func TestURLsWin(t *testing.T) {
	c, err := FromEnv(env(map[string]string{"POSTGRES_URL": "postgres://u@h/db", "SQL_HOST": "ignored", "MONGO_URI": "mongodb://m:1/?replicaSet=rs0"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PostgresURL != "postgres://u@h/db" || c.MongoURI != "mongodb://m:1/?replicaSet=rs0" {
		t.Errorf("config = %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		name, value string
		want        string // in the error, after NAME=
	}{
		{"PORT", "80800", `"80800": want a port number between 1 and 65535`},
		{"SQL_PORT", "abc", "want a port number"},
		{"POSTGRES_URL", "mysql://x", "want a URL like postgres://"},
		{"MONGO_URI", "http://x", "want a URI like mongodb://"},
		{"MONGO_CAPTURE_MODE", "tail", "want auto, changestream or oplog"},
		{"EMPLOYEES_TABLE", "empleados", "want a schema-qualified table"},
		{"LOG_LEVEL", "loud", "want debug, info, warn or error"},
		{"NATS_DUPLICATE_WINDOW", "-1s", "want a positive duration"},
		{"NATS_REPLICAS", "7", "want a number of replicas from 1 to 5"},
		{"DEBUG_ADDR", "6060", "want host:port"},
		{"INGESTOR_DEBUG_ADDR", "localhost:http", "want host:port"},
		{"ORDER_SELLER_FIELD", "", `"": want a value`},

		{"NATS_URL", "htp:/oops", `unexpected path "/oops"`},
		{"NATS_URL", "nats://", "no host"},
		{"NATS_URL", "nats://host:99999", "port 99999 is not between 1 and 65535"},
		{"NATS_URL", "nats://a:4222,,nats://b:4222", "entry 2 of 3 is empty"},
		{"NATS_URL", "nats://a:4222,", "entry 2 of 2 is empty"},
		{"NATS_URL", " ", "entry 1 of 1 is empty"},
		{"NATS_URL", "http://a:4222", `scheme "http" is not nats, tls, ws or wss`},
		{"NATS_URL", "nats://a:x", "not a URL"},
		{"NATS_URL", "ws://a:8080,nats://b:4222", "cannot be mixed"},
		{"NATS_URL", "a:4222,ws://b:8080", "cannot be mixed"},
		{"NATS_URL", "", `"": want a value`},

		{"NATS_DUPLICATE_WINDOW", "2", "want a positive duration"},
		{"NATS_DUPLICATE_WINDOW", "0s", "want a positive duration"},
		{"VIEW_SNAPSHOT_INTERVAL", "-1m", "want a duration like 1m, or 0 to disable"},
		{"VIEW_SNAPSHOT_INTERVAL", "often", "want a duration like 1m"},
		{"NATS_REPLICAS", "0", "from 1 to 5"},
		{"NATS_REPLICAS", "two", "from 1 to 5"},
		{"LOG_LEVEL", "", "want debug, info, warn or error"},
		{"LOG_FORMAT", "yaml", "want json or text"},
		{"EMPLOYEES_TABLE", "public.", "table: empty name"},
		{"EMPLOYEES_TABLE", ".empleados", "schema: empty name"},
		{"EMPLOYEES_TABLE", "public.emp leados", "is not allowed in a name"},
		{"EMPLOYEES_TABLE", `public."empleados"`, "is not allowed in a name"},
		{"EMPLOYEES_TABLE", "public." + strings.Repeat("e", 64), "longer than 63 bytes"},
		{"VIEW_TABLE", "reportes_dashboard", "want a schema-qualified table"},
		{"VIEW_TABLE", "public.a.b", "want a schema-qualified table"},
		{"VIEW_TABLE", "public.1vista", "is not allowed in a name"},
		{"VIEW_TABLE", "public." + strings.Repeat("v", 57), "longer than 56 bytes"},
		{"EMPLOYEE_CODE_COLUMN", "co digo", "want a column name like codigo"},
		{"EMPLOYEE_ROLE_COLUMN", "rol;", "want a column name like rol"},
		{"EMPLOYEE_ACTIVE_COLUMN", "activo.x", "want a column name like activo"},
		{"PG_SLOT", "Reportes", "want a replication slot name"},
		{"PG_SLOT", "reportes-1", "want a replication slot name"},
		{"PG_PUBLICATION", "pub lication", "want a publication name"},
		{"ORDER_SELLER_FIELD", "a..b", "empty path segment"},
		{"ORDER_SELLER_FIELD", ".vendedor", "empty path segment"},
		{"ORDER_SELLER_FIELD", "vendedor.", "empty path segment"},
		{"ORDER_SELLER_FIELD", "$vendedor", "starts with $"},
		{"MONGO_DB", "inventory.db", "not allowed in a database name"},
		{"MONGO_COLLECTION", "or$ders", "not allowed in a collection name"},
		{"MONGO_COLLECTION", "system.users", "system collections"},
		{"NATS_STREAM", "REPORTES.CDC", "not allowed in a stream name"},
		{"NATS_SUBJECT_PREFIX", "reportes.*", `wildcard "*"`},
		{"NATS_SUBJECT_PREFIX", "reportes..cdc", "empty subject token"},
		{"NATS_METRICS_PREFIX", "reportes.>", `wildcard ">"`},
		{"NATS_DEAD_LETTER_SUBJECT", "dead letter", "white space"},
		{"NATS_CHECKPOINT_BUCKET", "reportes.positions", "only letters, digits, _ and -"},
		{"VIEW_SNAPSHOT_BUCKET", "reportes view", "only letters, digits, _ and -"},
		{"VIEW_POSTGRES_URL", "mysql://x", "want a URL like postgres://"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := FromEnv(env(map[string]string{tt.name: tt.value}))
			if err == nil {
				t.Fatalf("%s=%q accepted", tt.name, tt.value)
			}
			if !strings.HasPrefix(err.Error(), "configuration: ") || !strings.Contains(err.Error(), tt.name+"=") ||
				!strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s=%q: error %q does not name the variable with %q", tt.name, tt.value, err, tt.want)
			}
		})
	}
}

// TestGoodValuesAccepted holds values the checks must not refuse: the
// forms nats.go accepts, optional values turned off, names with digits.
func TestGoodValuesAccepted(t *testing.T) {
	tests := []struct{ name, value string }{
		{"NATS_URL", "nats://127.0.0.1:4222"},
		{"NATS_URL", "nats://a:4222, nats://b:4222,tls://c:4443"},
		{"NATS_URL", "127.0.0.1:4222"},
		{"NATS_URL", "localhost"},
		{"NATS_URL", "[::1]:4222"},
		{"NATS_URL", "nats://user:pass@host:4222/"},
		{"NATS_URL", "user:pass@host:4222"},
		{"NATS_URL", "nats://token@host"},
		{"NATS_URL", "wss://host/nats,ws://other:8080,third:8080"},
		{"NATS_DUPLICATE_WINDOW", "90s"},
		{"VIEW_SNAPSHOT_INTERVAL", "0"},
		{"VIEW_SNAPSHOT_INTERVAL", "300ms"},
		{"VIEW_SNAPSHOT_BUCKET", ""},
		{"NATS_METRICS_PREFIX", ""},
		{"NATS_DEAD_LETTER_SUBJECT", ""},
		{"EMPLOYEE_ROLE_COLUMN", ""},
		{"EMPLOYEE_ACTIVE_COLUMN", ""},
		{"LOG_LEVEL", "DEBUG"},
		{"LOG_LEVEL", "warn"},
		{"EMPLOYEES_TABLE", "ventas.Empleados_2026"},
		{"VIEW_TABLE", "public.reportes_dashboard"},
		{"ORDER_SELLER_FIELD", "vendedor.codigo"},
		{"PG_SLOT", "test_e2e_123456789"},
		{"NATS_STREAM", "S_test_1"},
		{"NATS_CHECKPOINT_BUCKET", "P_test-1"},
		{"MONGO_COLLECTION", "orders.archive"},
	}
	for _, tt := range tests {
		if _, err := FromEnv(env(map[string]string{tt.name: tt.value})); err != nil {
			t.Errorf("%s=%q: %v", tt.name, tt.value, err)
		}
	}
}

// TestErrorsHideSecrets: a URL variable is a secret; its error shows
// where it points, never its password or token.
func TestErrorsHideSecrets(t *testing.T) {
	tests := []struct{ name, value, shown string }{
		{"NATS_URL", "nats://admin:s3cr3t@host:99999", "admin:xxxxx@host:99999"},
		{"NATS_URL", "nats://a:4222,nats://admin:s3cr3t@b:4222/oops", "admin:xxxxx@b:4222"},
		{"NATS_URL", "nats://s3cr3t@host:0", "xxxxx@host:0"},
		{"NATS_URL", "admin:s3cr3t@host:99999", "xxxxx@host:99999"},
		{"NATS_URL", "nats://admin:s3cr3t@host:x", "<unparseable URL>"},
		{"POSTGRES_URL", "mysql://admin:s3cr3t@db/x", "admin:xxxxx@db"},
		{"POSTGRES_URL", "host=db password=s3cr3t", "xxxxx"},
		{"VIEW_POSTGRES_URL", "mysql://admin:s3cr3t@db/x", "admin:xxxxx@db"},
		{"MONGO_URI", "http://admin:s3cr3t@m/", "admin:xxxxx@m"},
	}
	for _, tt := range tests {
		_, err := FromEnv(env(map[string]string{tt.name: tt.value}))
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), tt.shown) {
			t.Errorf("%s=%q: error %v (want it to show %q and no secret)", tt.name, tt.value, err, tt.shown)
		}
	}
}

func TestRedact(t *testing.T) {
	got := Redact("postgres://admin:secreto@db:5432/x")
	if strings.Contains(got, "secreto") || !strings.Contains(got, "admin") {
		t.Errorf("Redact = %s", got)
	}
	c, err := FromEnv(env(map[string]string{"SQL_PASSWORD": "secreto"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(Redact(c.PostgresURL), "secreto") {
		t.Error("password leaked")
	}
	for raw, want := range map[string]string{
		"nats://u:secreto@a:4222,nats://u:secreto@b:4222": "nats://u:xxxxx@a:4222,nats://u:xxxxx@b:4222",
		"nats://secreto@a:4222":                           "nats://xxxxx@a:4222",
		"mongodb://u:secreto@h1:27017,h2:27017/db":        "mongodb://u:xxxxx@h1:27017,h2:27017/db",
		"postgres://u@h/db?password=secreto":              "postgres://u@h/db?password=xxxxx",
		"postgres://admin@db/x":                           "postgres://admin@db/x",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestDeclaration checks what the compiler cannot: each variable declared
// once, documented, parsed, and giving way only to a declared variable.
func TestDeclaration(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range Vars {
		switch {
		case seen[v.Name]:
			t.Errorf("%s is declared twice", v.Name)
		case v.Help == "":
			t.Errorf("%s has no help", v.Name)
		case v.parse == nil:
			t.Errorf("%s has no parser", v.Name)
		case v.unless != "" && lookupVar(v.unless) == nil:
			t.Errorf("%s gives way to %s, which is not declared", v.Name, v.unless)
		}
		seen[v.Name] = true
	}
}

// TestGivingWay: the seed-compatible parts are neither checked nor read
// (not even their NAME_FILE) when the full URL is set.
func TestGivingWay(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"POSTGRES_URL": "postgres://u@h/db", "SQL_PORT": "x", "SQL_HOST": "", "SQL_PASSWORD_FILE": "/nonexistent",
		"MONGO_URI": "mongodb://m/", "MONGO_PORT": "x", "MONGO_HOST": "",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PostgresURL != "postgres://u@h/db" || c.MongoURI != "mongodb://m/" || c.ViewPostgresURL != c.PostgresURL {
		t.Errorf("config = %+v", c)
	}
	_, err = FromEnv(env(map[string]string{"SQL_PORT": "x", "MONGO_HOST": ""}))
	if err == nil || !strings.Contains(err.Error(), `SQL_PORT="x": want a port number`) || !strings.Contains(err.Error(), `MONGO_HOST="": want a host name`) {
		t.Errorf("without the URLs, the parts are checked: %v", err)
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/pw"
	if err := os.WriteFile(path, []byte("de-archivo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := FromEnv(env(map[string]string{"SQL_PASSWORD_FILE": path, "API_TOKEN_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.PostgresURL, ":de-archivo@") || c.APIToken != "de-archivo" {
		t.Errorf("secrets from files: %s %q", c.PostgresURL, c.APIToken)
	}
	if _, err := FromEnv(env(map[string]string{"API_TOKEN_FILE": dir + "/missing"})); err == nil || !strings.Contains(err.Error(), "API_TOKEN_FILE=") {
		t.Errorf("missing secret file: %v", err)
	}
	if _, err := FromEnv(env(map[string]string{"NATS_TLS_CERT": path})); err == nil || !strings.Contains(err.Error(), "NATS_TLS_CERT=") {
		t.Errorf("cert without key: %v", err)
	}
}
