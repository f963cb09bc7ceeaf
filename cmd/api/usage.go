package main

import (
	"fmt"
	"io"

	"github.com/reportes/reportes/internal/buildinfo"
	"github.com/reportes/reportes/internal/config"
)

const usageHead = `api serves GET /reportes/dashboard from a view it rebuilds from the change event stream and keeps current.

Usage:
  api             run the API (the default, without arguments)
  api rebuild [--from-seq N | --from-time T] [--url URL]
                  have the running API (API_URL, else http://127.0.0.1:PORT, with API_TOKEN)
                  rebuild its view beside the served one and swap it in, showing the progress;
                  exits 0 once the new view is served (docs/operations.md)
  api --version   print the version
  api --help      print this help (also -h, help)`

// commandLine handles the arguments, which ask for information or talk
// to a running API (rebuild): the API itself runs without any. It returns
// the exit code. An unknown argument is refused rather than ignored, so
// that a typo does not start a server.
func commandLine(args []string, stdout, stderr io.Writer) int {
	switch args[0] {
	case "rebuild":
		return rebuildCommand(args[1:], stdout, stderr)
	case "--version", "version":
		fmt.Fprintln(stdout, "reportes api", buildinfo.Version)
		return 0
	case "--help", "-help", "-h", "help":
		if err := config.WriteUsage(stdout, usageHead); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "api: unknown argument %q\n\n", args[0])
	_ = config.WriteUsage(stderr, usageHead)
	return 2
}
