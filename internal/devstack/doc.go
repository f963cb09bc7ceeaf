// Package devstack starts the services reportes needs on one machine, for
// `make run` and for the tests: a private PostgreSQL cluster with
// wal_level=logical (from the installed server binaries), an embedded NATS
// server with JetStream, and an embedded FerretDB (SQLite) whose oplog is
// created so that reportes can tail it. None of it is used by the production
// binaries.
package devstack
