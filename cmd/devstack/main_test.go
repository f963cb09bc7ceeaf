package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
)

// The test binary plays three parts: devstack itself (main, when
// DEVSTACK_TEST_MAIN is set) and, run under the names api and ingestor,
// the two binaries, faked by fakeBinary as FAKE_API and FAKE_INGESTOR say.
func TestMain(m *testing.M) {
	switch name := filepath.Base(os.Args[0]); {
	case name == "api" || name == "ingestor":
		os.Exit(fakeBinary(name))
	case os.Getenv("DEVSTACK_TEST_MAIN") != "":
		os.Args = append([]string{"devstack"}, strings.Fields(os.Getenv("DEVSTACK_TEST_MAIN"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeBinary serves /healthz on the port the real binary would take:
// "serve" at once, "after:<file>" once the file exists, "exit" exits 3
// at once. It prints when it listens and when it stops.
func fakeBinary(name string) int {
	mode := os.Getenv("FAKE_" + strings.ToUpper(name))
	portVar := map[string]string{"api": "PORT", "ingestor": "INGESTOR_PORT"}[name]
	if mode == "exit" {
		fmt.Println("fake", name, "failing")
		return 3
	}
	if file, ok := strings.CutPrefix(mode, "after:"); ok {
		for _, err := os.Stat(file); err != nil; _, err = os.Stat(file) {
			time.Sleep(20 * time.Millisecond) // a slow start, not synchronisation
		}
	}
	ln, err := net.Listen("tcp", ":"+os.Getenv(portVar))
	if err != nil {
		fmt.Println("fake", name, err)
		return 1
	}
	fmt.Println("fake", name, "listening")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	_ = srv.Close()
	fmt.Println("fake", name, "stopped")
	return 0
}

// stack is a devstack process of the test and its output (stdout, stderr
// and the children's, in the order written), line by line.
type stack struct {
	cmd   *exec.Cmd
	lines chan string
	seen  []string
	done  chan error
}

// startDevstack runs devstack against fakes, with NATS, PostgreSQL and
// MongoDB "named by the environment" so that it starts none of them.
func startDevstack(t *testing.T, env ...string) *stack {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"api", "ingestor"} {
		if err := os.Symlink(exe, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{lines: make(chan string, 100), done: make(chan error, 1)}
	s.cmd = exec.Command(exe)
	s.cmd.Dir = dir // no .env
	s.cmd.Env = append(os.Environ(),
		fmt.Sprintf("DEVSTACK_TEST_MAIN=-data %s -api %s -ingestor %s -wait 60s", filepath.Join(dir, "data"), filepath.Join(dir, "api"), filepath.Join(dir, "ingestor")),
		"NATS_URL=nats://127.0.0.1:1", "POSTGRES_URL=postgres://u@127.0.0.1:1/db", "MONGO_URI=mongodb://127.0.0.1:1/")
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-s.done; err != nil {
			t.Logf("devstack exited on SIGTERM: %v", err)
		}
		_ = r.Close()
	})
	return s
}

// waitFor reads the output until a line contains want, and fails the test
// on a line containing any of refuse first, or at the deadline.
func (s *stack) waitFor(t *testing.T, want string, refuse ...string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("output ended before %q:\n%s", want, strings.Join(s.seen, "\n"))
			}
			s.seen = append(s.seen, l)
			for _, r := range refuse {
				if strings.Contains(l, r) {
					t.Fatalf("%q before %q:\n%s", r, want, strings.Join(s.seen, "\n"))
				}
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within 60s:\n%s", want, strings.Join(s.seen, "\n"))
		}
	}
}

// exitCode waits for devstack and its children to exit, reading the rest
// of the output.
func (s *stack) exitCode(t *testing.T) int {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for lines := s.lines; lines != nil; {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil // every writer, devstack and children, has exited
				break
			}
			s.seen = append(s.seen, l)
		case <-deadline:
			t.Fatalf("devstack or a child did not exit within 60s:\n%s", s.output())
		}
	}
	err := <-s.done
	s.done <- err // for the cleanup
	return s.cmd.ProcessState.ExitCode()
}

func (s *stack) output() string { return strings.Join(s.seen, "\n") }

func ports(t *testing.T) (api, ingestor int) {
	t.Helper()
	p, err := devstack.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

func portEnv(api, ingestor int) []string {
	return []string{fmt.Sprintf("PORT=%d", api), fmt.Sprintf("INGESTOR_PORT=%d", ingestor)}
}

func answers(port int) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestBannerOnceEveryServiceIsUp: the API starts listening only when the
// test says so, after the ingestor is up; the banner must wait for it.
func TestBannerOnceEveryServiceIsUp(t *testing.T) {
	apiPort, ingPort := ports(t)
	goFile := filepath.Join(t.TempDir(), "go")
	s := startDevstack(t, append(portEnv(apiPort, ingPort), "FAKE_INGESTOR=serve", "FAKE_API=after:"+goFile)...)
	s.waitFor(t, "fake ingestor listening", "reportes is running")
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "fake api listening", "reportes is running")
	s.waitFor(t, "reportes is running")
	if !answers(apiPort) || !answers(ingPort) {
		t.Fatalf("banner printed while a service does not answer:\n%s", s.output())
	}
}

func TestTakenPortIsNamedBeforeStarting(t *testing.T) {
	for _, name := range []string{"PORT", "INGESTOR_PORT"} {
		t.Run(name, func(t *testing.T) {
			apiPort, ingPort := ports(t)
			taken := map[string]int{"PORT": apiPort, "INGESTOR_PORT": ingPort}[name]
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", taken))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			s := startDevstack(t, append(portEnv(apiPort, ingPort), "FAKE_INGESTOR=serve", "FAKE_API=serve")...)
			code := s.exitCode(t)
			out := s.output()
			if code == 0 || !strings.Contains(out, fmt.Sprintf("port %d (%s) is in use", taken, name)) || !strings.Contains(out, name+"=") ||
				!strings.Contains(out, "make run") {
				t.Errorf("exit %d, want non-zero and a message naming %s and how to change it:\n%s", code, name, out)
			}
			if strings.Contains(out, "fake ") || strings.Contains(out, "reportes is running") {
				t.Errorf("started the binaries:\n%s", out)
			}
		})
	}
}

func TestChildExitBeforeBannerStopsTheOthers(t *testing.T) {
	apiPort, ingPort := ports(t)
	s := startDevstack(t, append(portEnv(apiPort, ingPort), "FAKE_INGESTOR=serve", "FAKE_API=exit")...)
	code := s.exitCode(t)
	out := s.output()
	if code == 0 || !strings.Contains(out, "api exited before it was up") {
		t.Errorf("exit %d, want non-zero and api named:\n%s", code, out)
	}
	if strings.Contains(out, "reportes is running") {
		t.Errorf("banner printed though the api exited:\n%s", out)
	}
	// The output ends when every writer has exited: the ingestor too.
	if strings.Contains(out, "fake ingestor listening") && !strings.Contains(out, "fake ingestor stopped") {
		t.Errorf("ingestor not stopped:\n%s", out)
	}
}
