// Package buildinfo holds the version stamped into the binaries by the
// Makefile (-ldflags "-X github.com/reportes/reportes/internal/buildinfo.Version=...").
package buildinfo

// Version of the build; "dev" when built without the Makefile.
var Version = "dev"
