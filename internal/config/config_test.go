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
	tests := map[string]string{
		"PORT":                  "80800",
		"SQL_PORT":              "abc",
		"POSTGRES_URL":          "mysql://x",
		"MONGO_URI":             "http://x",
		"MONGO_CAPTURE_MODE":    "tail",
		"EMPLOYEES_TABLE":       "empleados",
		"LOG_LEVEL":             "loud",
		"NATS_DUPLICATE_WINDOW": "-1s",
		"NATS_REPLICAS":         "7",
		"DEBUG_ADDR":            "6060",
		"INGESTOR_DEBUG_ADDR":   "localhost:http",
		"ORDER_SELLER_FIELD":    "",
	}
	for name, value := range tests {
		_, err := FromEnv(env(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s=%q: error %v does not name the variable", name, value, err)
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
}

func TestEveryVariableHasDocs(t *testing.T) {
	for _, v := range Vars {
		if v.Help == "" {
			t.Errorf("%s has no help", v.Name)
		}
	}
}

// TestEnvExampleDocumentsEveryVariable keeps .env.example in step with Vars.
func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	data, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(data), v.Name+"=") {
			t.Errorf(".env.example does not document %s", v.Name)
		}
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
