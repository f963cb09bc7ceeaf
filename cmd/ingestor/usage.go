package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/reportes/reportes/internal/buildinfo"
	"github.com/reportes/reportes/internal/config"
)

const usageHead = `ingestor captures employee changes from PostgreSQL and order changes from MongoDB and publishes them to NATS JetStream.

Usage:
  ingestor               run the capture (the default, without arguments)
  ingestor slot status   show the replication slot and the publication
  ingestor slot drop     drop them (stop the ingestor first; the next start takes a new snapshot)
  ingestor backfill postgres [--table schema.table] [--where SQL] [--chunk-size N] [--detach]
  ingestor backfill mongo [--collection db.coll] [--filter JSON] [--chunk-size N] [--detach]
                         read the table or collection again while the running ingestor
                         goes on capturing; prints progress, exits 0 once it was published
  ingestor backfill status [--json]
                         list running and finished backfills
  ingestor --version     print the version
  ingestor --help        print this help (also -h, help)`

// commandLine answers the arguments that need no configuration (version,
// help, a command that does not exist) before anything is read or started.
// done reports whether main must exit with code; otherwise args is a
// command main runs: none (the capture) or slot status|drop.
func commandLine(args []string, stdout, stderr io.Writer) (code int, done bool) {
	switch {
	case len(args) == 0:
		return 0, false
	case args[0] == "--version" || args[0] == "version":
		fmt.Fprintln(stdout, "reportes ingestor", buildinfo.Version)
		return 0, true
	case args[0] == "--help" || args[0] == "-help" || args[0] == "-h" || args[0] == "help":
		if err := config.WriteUsage(stdout, usageHead); err != nil {
			return 1, true
		}
		return 0, true
	case len(args) == 2 && args[0] == "slot" && (args[1] == "status" || args[1] == "drop"):
		return 0, false
	case len(args) >= 2 && args[0] == "backfill":
		return 0, false
	}
	// A typo must not start the capture or touch the slot.
	fmt.Fprintf(stderr, "ingestor: unknown command %q\n\n", strings.Join(args, " "))
	_ = config.WriteUsage(stderr, usageHead)
	return 2, true
}
