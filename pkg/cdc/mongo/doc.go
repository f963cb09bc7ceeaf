// Package mongo captures document changes from MongoDB and MongoDB-compatible
// servers and publishes them as cdc events.
//
// Two capture modes share one snapshot and checkpoint discipline:
//
//   - Change streams (Watch with fullDocument=updateLookup) on servers that
//     support them, resumed from a saved resume token.
//   - Oplog tailing of local.oplog.rs on servers that answer that change
//     streams are not supported (FerretDB, older or MongoDB-compatible
//     servers), resumed from a saved oplog timestamp.
//
// ModeAuto picks change streams and falls back to the oplog when the server
// refuses them. On the first start the source records the position to stream
// from, then reads every document of the collection and publishes it as a
// snapshot event, then streams from the recorded position: a change made
// during the snapshot is published again afterwards, never lost. Positions
// are saved in the checkpoint bucket only after JetStream acknowledged the
// events before them. A saved position the server no longer has (an expired
// resume token, an oplog that rolled over) is detected at start-up and
// answered with a new snapshot, never with a silent gap. Snapshots go
// through cdc.Snapshot; positions are kept through the Checkpoints the
// source is given (stream.Checkpoints in the ingestor).
//
// Run contacts the server first and gives up within seconds when nothing
// answers ("cannot reach MongoDB at host:port: reason"), for the supervisor
// to retry; a server that refuses the credentials or the rights makes it
// return a permanent error (cdc.Permanent). A change the source cannot turn
// into a whole event (a malformed entry or document, one without _id) never
// stops it: it publishes what it can (the key alone) or nothing, logs and
// counts it (reportes_mongo_changes_unusable_total), and moves on. Document
// values reach message ids only bounded (cdc.Bound).
package mongo
