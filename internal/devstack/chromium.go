package devstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// chromiumNames are the executables Debian and other distributions ship
// Chromium as.
var chromiumNames = []string{"chromium", "chromium-browser"}

// chromiumPath finds the binary once per process: installing it can take
// minutes, and every browser test asks.
var chromiumPath = sync.OnceValues(findOrInstallChromium)

// Chromium returns the path of a Chromium executable: $CHROMIUM_BIN, or
// chromium or chromium-browser on $PATH. When none is found and we are
// root it installs Debian's chromium package, as PostgresBinDir installs
// PostgreSQL.
func Chromium() (string, error) { return chromiumPath() }

func findOrInstallChromium() (string, error) {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p, nil
	}
	find := func() string {
		for _, n := range chromiumNames {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	return findOrInstall(find, "chromium",
		"chromium not found: install it (Debian: apt-get install chromium) or set CHROMIUM_BIN to its executable")
}

// findOrInstall returns what find finds; when it finds nothing and we are
// root, it installs Debian's pkg with apt-get and looks again. missing is
// the error without root.
func findOrInstall(find func() string, pkg, missing string) (string, error) {
	if p := find(); p != "" {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New(missing)
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	if p := find(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("still not found after installing the %s package", pkg)
}
