package config

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/joho/godotenv"
)

// The README's configuration table and .env.example are generated from
// the declaration (sections, in vars.go). TestGeneratedDocs fails while
// they are out of date; to rewrite them:
//
//	go test ./internal/config -run TestGeneratedDocs -update
var update = flag.Bool("update", false, "rewrite .env.example and the README's configuration table from the declaration")

const (
	envExamplePath = "../../.env.example"
	readmePath     = "../../README.md"
	tableBegin     = "<!-- config table: generated from internal/config/vars.go by `go test ./internal/config -run TestGeneratedDocs -update` -->\n"
	tableEnd       = "<!-- end of config table -->"
)

func TestGeneratedDocs(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(readme), tableBegin)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok || !ok2 {
		t.Fatalf("README.md has no lines %q and %q around the configuration table", tableBegin, tableEnd)
	}
	files := map[string]string{
		envExamplePath: envExample(),
		readmePath:     before + tableBegin + readmeTable() + tableEnd + after,
	}
	for path, want := range files {
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is out of date with internal/config/vars.go: run go test ./internal/config -run TestGeneratedDocs -update", path)
		}
	}
}

// TestDocsNameEveryVariable is the floor under TestGeneratedDocs: whatever
// the layout, every variable appears in README.md and .env.example.
func TestDocsNameEveryVariable(t *testing.T) {
	for path, form := range map[string]string{readmePath: "`%s`", envExamplePath: "%s="} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range Vars {
			if !strings.Contains(string(data), fmt.Sprintf(form, v.Name)) {
				t.Errorf("%s does not document %s", path, v.Name)
			}
		}
	}
}

// TestEnvExampleMeansTheDefaults: copied to .env, .env.example changes
// nothing, and godotenv reads every value as written.
func TestEnvExampleMeansTheDefaults(t *testing.T) {
	got, err := godotenv.Unmarshal(envExample())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		value, ok := got[v.Name]
		if v.example != "" {
			ok = !ok // shown commented out
		}
		if !ok || value != v.Default {
			t.Errorf("%s: .env.example sets %q (set: %v), want the default %q", v.Name, value, ok, v.Default)
		}
	}
}

const envExampleHead = `# reportes configuration. Copy to .env (values already in the environment win).
# Every variable is optional; the defaults below are what an unset variable means.
# ` + "`make run`" + ` starts its own PostgreSQL, FerretDB and NATS unless SQL_HOST/POSTGRES_URL,
# MONGO_HOST/MONGO_URI or NATS_URL are set.
# Generated from internal/config/vars.go: edit the declaration there, then run
#   go test ./internal/config -run TestGeneratedDocs -update
`

// envExample is .env.example: per section its title and note, then per
// variable its description and NAME=default (commented out, with an
// example, for a URL that wins over other variables).
func envExample() string {
	var b strings.Builder
	b.WriteString(envExampleHead)
	comment(&b, strings.Join(secretNames(), ", ")+" may instead be given as NAME_FILE=/path/to/file (Docker and Kubernetes secrets).")
	for _, s := range sections {
		fmt.Fprintf(&b, "\n# --- %s ---\n", s.title)
		if s.note != "" {
			comment(&b, s.note)
		}
		for _, v := range s.vars {
			comment(&b, v.Help)
			if v.example != "" {
				fmt.Fprintf(&b, "# %s=%s\n", v.Name, v.example)
			} else {
				fmt.Fprintf(&b, "%s=%s\n", v.Name, v.Default)
			}
		}
	}
	return b.String()
}

// comment writes text as # lines of at most 90 columns (longer words
// stay whole).
func comment(b *strings.Builder, text string) {
	line := "#"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > 90 && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
}

// readmeTable is the README's table: a row per section (title and note),
// then a row per variable with its default and description.
func readmeTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | |\n|---|---|---|\n")
	for _, s := range sections {
		row(&b, "**"+markdown(s.title)+"**", "", markdown(s.note))
		for _, v := range s.vars {
			def := ""
			if v.Default != "" {
				def = "`" + v.Default + "`"
			}
			help := markdown(v.Help)
			if v.secret != nil {
				help += fmt.Sprintf("; a secret, also as `%s_FILE`", v.Name)
			}
			row(&b, "`"+v.Name+"`", def, help)
		}
	}
	return b.String()
}

func row(b *strings.Builder, cells ...string) {
	for _, c := range cells {
		b.WriteString("| ")
		if c != "" {
			b.WriteString(c + " ")
		}
	}
	b.WriteString("|\n")
}

// markdown escapes what a table cell would otherwise take as markup.
var markdown = strings.NewReplacer("|", `\|`, "*", `\*`, "<", "&lt;", ">", "&gt;").Replace
