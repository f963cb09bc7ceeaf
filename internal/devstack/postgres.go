package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster.
type Postgres struct {
	Dir  string
	Port int
	bin  string
	cred *syscall.Credential
}

// PostgresBinDir finds the PostgreSQL server binaries: $PG_BIN, the Debian
// layout (/usr/lib/postgresql/<version>/bin), or pg_config. When none is
// found and we are root it installs Debian's postgresql package.
func PostgresBinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	find := func() string {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
		if len(matches) > 0 {
			return filepath.Dir(matches[0])
		}
		if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
			d := strings.TrimSpace(string(out))
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d
			}
		}
		return ""
	}
	return findOrInstall(find, "postgresql",
		"PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql) or set PG_BIN to the folder holding initdb and pg_ctl")
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// StartPostgres initializes dir (when empty) and starts a cluster on port
// (0 picks a free one) listening on 127.0.0.1, with wal_level=logical and
// trust authentication for local connections.
func StartPostgres(ctx context.Context, dir string, port int) (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	p := &Postgres{Dir: dir, Port: port, bin: bin}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: run the cluster as postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user (created by the postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // ids from /etc/passwd fit
		if err := chownAll(dir, uid, gid); err != nil {
			return nil, err
		}
		if err := makeTraversable(filepath.Dir(dir)); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := p.run(ctx, "initdb", "-D", dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
			return nil, err
		}
	}
	opts := strings.Join([]string{
		"-c listen_addresses=127.0.0.1",
		"-c port=" + strconv.Itoa(port),
		"-c unix_socket_directories=" + dir,
		"-c wal_level=logical",
		"-c max_replication_slots=20",
		"-c max_wal_senders=20",
		"-c fsync=off",
		"-c full_page_writes=off",
		"-c max_connections=200",
	}, " ")
	if err := p.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", dir, "-l", filepath.Join(dir, "server.log"), "-o", opts); err != nil {
		return nil, err
	}
	return p, nil
}

// URL returns the superuser URL of database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// CreateDatabase creates db unless it exists.
func (p *Postgres) CreateDatabase(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to local postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", db, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

// Stop shuts the cluster down (fast mode).
func (p *Postgres) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", p.Dir)
}

// Restart stops and starts the cluster with the same settings.
func (p *Postgres) Restart(ctx context.Context) error {
	if err := p.Stop(); err != nil {
		return err
	}
	q, err := StartPostgres(ctx, p.Dir, p.Port)
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

func (p *Postgres) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func chownAll(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid) //nolint:gosec // a folder this process created for its own cluster
	})
}

// makeTraversable lets the postgres user reach dir's parents.
func makeTraversable(dir string) error {
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("make %s traversable for postgres: %w", d, err)
			}
		}
	}
	return nil
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now. Each
// is held until all are found: calls of FreePort one after another may be
// handed the same port.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePortCheck reports whether port is free on 127.0.0.1.
func FreePortCheck(port int) (bool, error) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false, nil //nolint:nilerr // in use is an answer, not an error
	}
	return true, l.Close()
}
