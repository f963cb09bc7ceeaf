// Package deploy holds the container, Compose, Kubernetes, Prometheus and
// Grafana files. No Docker engine or cluster runs in CI, so these tests
// parse every file with the libraries the tools themselves use and check
// what reportes depends on: services, images, ports, probes, and that every
// environment variable and metric named really exists in the code.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/reportes/reportes/internal/config"
)

func knownVar(name string) bool {
	if name == "GOMEMLIMIT" {
		return true // read by the Go runtime
	}
	name = strings.TrimSuffix(name, "_FILE")
	return slices.ContainsFunc(config.Vars, func(v config.Var) bool { return v.Name == name })
}

// memLimit is the GOMEMLIMIT a container sets, in bytes, written in MiB.
func memLimit(c corev1.Container) (int64, error) {
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			mib, err := strconv.ParseInt(strings.TrimSuffix(e.Value, "MiB"), 10, 64)
			if err != nil || !strings.HasSuffix(e.Value, "MiB") {
				return 0, fmt.Errorf("GOMEMLIMIT %q: want a number of MiB", e.Value)
			}
			return mib << 20, nil
		}
	}
	return 0, errors.New("no GOMEMLIMIT: the garbage collector does not know the container's memory limit")
}

func TestCompose(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"}, cli.WithWorkingDirectory(".."), cli.WithName("reportes"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	for _, name := range []string{"postgres", "mongo", "mongo-init", "nats", "ingestor", "api"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	if img := p.Services["postgres"].Image; !strings.HasPrefix(img, "postgres:15") {
		t.Errorf("postgres image %s, want postgres:15", img)
	}
	if !slices.Contains(p.Services["postgres"].Command, "wal_level=logical") {
		t.Errorf("postgres must run with wal_level=logical: %v", p.Services["postgres"].Command)
	}
	if img := p.Services["mongo"].Image; !strings.HasPrefix(img, "mongo:7") {
		t.Errorf("mongo image %s, want mongo:7", img)
	}
	if !slices.Contains(p.Services["mongo"].Command, "--replSet") {
		t.Errorf("mongo must be a replica set for change streams: %v", p.Services["mongo"].Command)
	}
	if !slices.Contains(p.Services["nats"].Command, "-js") {
		t.Errorf("nats must enable JetStream: %v", p.Services["nats"].Command)
	}
	api := p.Services["api"]
	if len(api.Ports) != 1 || api.Ports[0].Published != "8002" || api.Ports[0].Target != 8002 {
		t.Errorf("api ports %+v, want 8002:8002", api.Ports)
	}
	for _, name := range []string{"postgres", "mongo", "nats", "ingestor"} {
		if len(p.Services[name].Ports) != 0 {
			t.Errorf("%s publishes ports; the data tier stays private", name)
		}
	}
	if !p.Networks["data"].Internal {
		t.Error("the data network must be internal")
	}
	for _, name := range []string{"ingestor", "api"} {
		s := p.Services[name]
		if s.Build == nil || s.Build.Target != name {
			t.Errorf("%s must build the Dockerfile target %s", name, name)
		}
		for k := range s.Environment {
			if !knownVar(k) {
				t.Errorf("%s sets %s, which the code does not read", name, k)
			}
		}
	}
	// The Dockerfile has the targets compose builds.
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"AS ingestor", "AS api", "USER nonroot"} {
		if !bytes.Contains(df, []byte(target)) {
			t.Errorf("Dockerfile lacks %q", target)
		}
	}
}

func TestKubernetes(t *testing.T) {
	data, err := os.ReadFile("kubernetes/reportes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	deployments := map[string]appsv1.Deployment{}
	kinds := map[string]int{}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("parse: %v", err)
		}
		if meta.Kind == "" {
			continue
		}
		kinds[meta.Kind]++
		var obj any
		switch meta.Kind {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Secret":
			obj = &corev1.Secret{}
		case "NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		default:
			t.Fatalf("unexpected kind %s", meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			deployments[o.Name] = *o
		case *corev1.ConfigMap:
			for k := range o.Data {
				if !knownVar(k) {
					t.Errorf("ConfigMap sets %s, which the code does not read", k)
				}
			}
		case *corev1.Secret:
			for k := range o.StringData {
				if !knownVar(k) {
					t.Errorf("Secret sets %s, which the code does not read", k)
				}
			}
		}
	}
	if kinds["NetworkPolicy"] == 0 {
		t.Error("no NetworkPolicy keeps the databases private")
	}
	ing, api := deployments["reportes-ingestor"], deployments["reportes-api"]
	if ing.Spec.Replicas == nil || *ing.Spec.Replicas < 2 {
		t.Error("the ingestor must run a standby beside the one that captures")
	}
	if api.Spec.Replicas == nil || *api.Spec.Replicas < 2 {
		t.Error("the API must run several replicas")
	}
	for name, d := range deployments {
		if d.Spec.Template.Spec.SecurityContext == nil || d.Spec.Template.Spec.SecurityContext.RunAsNonRoot == nil || !*d.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s must run as non-root", name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				t.Errorf("%s/%s lacks probes", name, c.Name)
			} else if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("%s/%s probes must use /healthz and /readyz", name, c.Name)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("%s/%s lacks resource requests and limits", name, c.Name)
			}
			if limit, err := memLimit(c); err != nil {
				t.Errorf("%s/%s: %v", name, c.Name, err)
			} else if ceiling := c.Resources.Limits.Memory().Value(); limit > ceiling*15/16 {
				t.Errorf("%s/%s: GOMEMLIMIT %d leaves too little of the container's %d bytes to what the runtime does not count", name, c.Name, limit, ceiling)
			}
			for _, e := range c.Env {
				if !knownVar(e.Name) {
					t.Errorf("%s/%s sets %s, which the code does not read", name, c.Name, e.Name)
				}
				if strings.Contains(e.Name, "PASSWORD") || e.Name == "API_TOKEN" {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						t.Errorf("%s/%s: %s must come from a Secret", name, c.Name, e.Name)
					}
				}
			}
		}
	}
}

// metricNames returns every metric name defined in the Go code.
func metricNames(t *testing.T) map[string]bool {
	names := map[string]bool{}
	re := regexp.MustCompile(`Name:\s+"(reportes_[a-z_]+)"`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".data") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllSubmatch(data, -1) {
				names[string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func checkExprs(t *testing.T, file string, exprs []string, names map[string]bool) {
	re := regexp.MustCompile(`reportes_[a-z_]+`)
	n := 0
	for _, e := range exprs {
		for _, m := range re.FindAllString(e, -1) {
			base := m
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(m, suf) && names[strings.TrimSuffix(m, suf)] {
					base = strings.TrimSuffix(m, suf)
				}
			}
			if !names[base] {
				t.Errorf("%s uses %s, which no code defines", file, m)
			}
			n++
		}
	}
	if n == 0 {
		t.Errorf("%s references no reportes metric", file)
	}
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/reportes-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	checkExprs(t, "grafana dashboard", exprs, metricNames(t))
}

func TestPrometheusAlerts(t *testing.T) {
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Annotations      map[string]string
			}
		}
	}
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	checkExprs(t, "alerts.yml", exprs, metricNames(t))
}

// TestComposeCluster: the high-availability profile loads over the base
// file: three JetStream nodes routed to each other, the services on all
// three with three replicas, and a standby ingestor.
func TestComposeCluster(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml", "../docker-compose.cluster.yml"}, cli.WithWorkingDirectory(".."), cli.WithName("reportes"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.cluster.yml does not load over docker-compose.yml: %v", err)
	}
	for _, name := range []string{"nats", "nats-2", "nats-3"} {
		cmd := strings.Join(p.Services[name].Command, " ")
		if !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "--cluster_name reportes") || strings.Count(cmd, ":6222") != 3 {
			t.Errorf("%s is no JetStream member routed to the two others: %s", name, cmd)
		}
	}
	for _, name := range []string{"ingestor", "ingestor-standby", "api"} {
		env := p.Services[name].Environment
		if url := env["NATS_URL"]; url == nil || strings.Count(*url, "nats://") != 3 {
			t.Errorf("%s does not name the three nodes: %v", name, url)
		}
		if r := env["NATS_REPLICAS"]; r == nil || *r != "3" {
			t.Errorf("%s creates streams and buckets with %v replicas, want 3", name, r)
		}
		for k := range env {
			if !knownVar(k) {
				t.Errorf("%s sets %s, which the code does not read", name, k)
			}
		}
	}
}
