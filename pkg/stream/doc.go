// Package stream is the JetStream transport of change events: the stream
// they are stored in (Ensure), the key-value bucket sources keep their
// positions in (Checkpoints), and the Publisher that delivers events to the
// stream for the sources of package cdc.
//
// # Contract
//
// A Publisher publishes each event asynchronously on
// cdc.Subject(prefix, event), a subject per key (per snapshot series for
// markers), with a Nats-Msg-Id equal to its ID, and keeps at most a bounded number in flight (Publish blocks at the
// bound). Callbacks registered with AfterAcked run in publication order on
// the goroutine that receives acknowledgements, once JetStream acknowledged
// every event published before them; Flush waits for all of them. The first
// failure (a refusal, a missing acknowledgement within the ack timeout, a
// lost connection with events in flight) stops the Publisher: every later
// call returns that error and no callback runs again. A Publisher also
// stops with ErrReordered when JetStream answers that an event is a
// duplicate of a copy stored before an event published ahead of it (a
// publish lost while a later one got through, across a reconnect or a
// stream leader change, and the source republishing from its last
// acknowledged position): the next Publisher of the same Opener suffixes
// the message ids with "~r<n>", n the stream sequence of the detection, so
// every event from there is stored again in order and the last message of
// each subject is the key's last change. Sources therefore republish only
// by restarting from an acknowledged position, never within one run;
// snapshot rows and markers (ordered by their versions) take no part.
// An event too large
// for a NATS message is published with only the fields declared with
// WithKeepOnOversize, marked Truncated.
//
// Ensure and OpenCheckpoints create what is missing and otherwise use what
// exists as it is: settings an operator changed stay across restarts. A
// stream Ensure creates keeps, by default, the last message of each subject
// (HistoryCompact): with a subject per key that is the current state of
// every key, so its size follows the live data; Keeps and Lossy tell what
// an existing stream keeps and what may drop a key's last event.
// Checkpoints.Save is called by sources only for positions whose events
// were acknowledged.
package stream
