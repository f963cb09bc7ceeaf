package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/devstack"
)

func TestHelpListsEveryVariable(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out, errOut bytes.Buffer
		if code := commandLineCode([]string{arg}, &out, &errOut); code != 0 || errOut.Len() > 0 {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errOut.String())
		}
		checkUsage(t, out.String())
	}
}

func TestUnknownArgumentIsRefused(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := commandLineCode([]string{"--hepl"}, &out, &errOut); code != 2 || out.Len() > 0 {
		t.Fatalf("exit %d, stdout %q", code, out.String())
	}
	if !strings.Contains(errOut.String(), `unknown command "--hepl"`) {
		t.Errorf("stderr does not name the argument:\n%s", errOut.String())
	}
	checkUsage(t, errOut.String())
}

// TestHelpDoesNotStartTheServer runs the binary's main in a process of its
// own, with an environment in which it would serve.
func TestHelpDoesNotStartTheServer(t *testing.T) {
	for _, tt := range []struct {
		args, stdout string
		code         int
	}{
		{"--help", "Environment", 0},
		{"-h", "Environment", 0},
		{"help", "Environment", 0},
		{"--version", "reportes ingestor", 0},
		{"slot", "", 2},
		{"slot list", "", 2},
		{"run", "", 2},
	} {
		stdout, stderr, code := runMain(t, tt.args)
		if code != tt.code || !strings.Contains(stdout, tt.stdout) || (tt.stdout == "") != (stdout == "") {
			t.Errorf("ingestor %s: exit %d (want %d)\nstdout: %s\nstderr: %s", tt.args, code, tt.code, stdout, stderr)
		}
		if tt.code == 2 && !strings.Contains(stderr, "Usage:") {
			t.Errorf("ingestor %s: no usage on stderr: %s", tt.args, stderr)
		}
	}
}

// checkUsage requires the help to hold every variable of config.Vars on a
// line with its default and description, and where the docs are.
func checkUsage(t *testing.T, out string) {
	t.Helper()
	for _, v := range config.Vars {
		def := v.Default
		if def == "" {
			def = "(unset)"
		}
		found := false
		for l := range strings.SplitSeq(out, "\n") {
			f := strings.Fields(l)
			found = found || (len(f) > 0 && f[0] == v.Name && strings.Contains(l, def) && strings.HasSuffix(l, v.Help))
		}
		if !found {
			t.Errorf("usage has no line for %s with default %q and %q", v.Name, def, v.Help)
		}
	}
	for _, want := range []string{"Usage:", "slot status", "slot drop", "--version", "README.md", "docs/operations.md"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage does not mention %q", want)
		}
	}
}

// TestRunMain is no test of its own: it is main, for runMain.
func TestRunMain(t *testing.T) {
	args, ok := os.LookupEnv("REPORTES_TEST_MAIN_ARGS")
	if !ok {
		t.Skip("runs main for runMain")
	}
	os.Args = append([]string{"ingestor"}, strings.Fields(args)...)
	main()
}

// runMain runs main with args in a new process (this test binary). Its
// environment would let a server start (a free PORT, a NATS nobody
// listens on, which the API waits for), so an argument that starts one
// is caught by the deadline.
func runMain(t *testing.T, args string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := devstack.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestRunMain$")
	cmd.Env = append(os.Environ(), "REPORTES_TEST_MAIN_ARGS="+args,
		fmt.Sprintf("INGESTOR_PORT=%d", ports[0]), fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", ports[1]))
	cmd.Dir = t.TempDir() // no .env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ingestor %s did not exit within 30s (it started?)\nstderr: %s", args, errOut.String())
	}
	if exit := (*exec.ExitError)(nil); err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func commandLineCode(args []string, stdout, stderr *bytes.Buffer) int {
	code, done := commandLine(args, stdout, stderr)
	if !done {
		return -1
	}
	return code
}

func TestCommandsPassThrough(t *testing.T) {
	for _, args := range [][]string{nil, {"slot", "status"}, {"slot", "drop"}} {
		var out, errOut bytes.Buffer
		if _, done := commandLine(args, &out, &errOut); done || out.Len()+errOut.Len() > 0 {
			t.Errorf("%v: handled before the configuration is read", args)
		}
	}
}
