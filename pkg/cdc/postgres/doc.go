// Package postgres captures row changes from PostgreSQL with logical
// replication (the pgoutput plugin, through pglogrepl) and publishes them as
// cdc events.
//
// On its first start the source creates its publication (when missing) and
// its replication slot, exporting the slot's snapshot; it reads the captured
// tables inside that snapshot and then streams from the slot's consistent
// point, so every committed change is published exactly once in source order
// (and at worst republished with the same message id after a crash). The
// slot's flushed LSN is reported to PostgreSQL only after JetStream
// acknowledged every event of the transactions before it; a restart resumes
// from there. When nothing is pending the flushed LSN follows the server's
// WAL position, so WAL written for other tables never piles up behind an idle
// slot.
//
// A slot that disappeared or was invalidated while the ingestor was down
// cannot say what changed in the meantime: the source logs it, counts it in
// reportes_cdc_snapshots_total{reason="position_lost"}, creates a new slot and
// takes a new snapshot, whose begin and end markers let consumers drop rows
// deleted in the gap.
package postgres
