// Package live carries the view's changes to those who follow them: the
// metric-update subjects in a JetStream stream (Subjects) and the
// dashboard's Server-Sent Events (Hub), both fed through a Coalescer.
//
// # Contract
//
// The projector hands every applied batch to a Coalescer as a
// [projection.Update]: absolute lines, exactly the view's state at the
// update's sequence. A Coalescer sends a change after a quiet interval at
// once and a burst as at most one update per interval, always ending with
// the latest values; a later update supersedes an earlier one for what it
// names, so skipping intermediate updates never leaves a wrong figure.
//
// Subjects stores each seller's line on <prefix>.vendedor.<code> and the
// totals on <prefix>.global, in a stream that keeps the last message per
// subject (a late subscriber reads every current value at once). A
// message's Nats-Msg-Id is its subject and sequence, and it is stored only
// over an older line of its subject (compare and set on the subject's last
// sequence): the stream stores one copy however many API replicas publish
// it, and never goes back to an older line. What is not stored is
// published again, with the latest value.
//
// Hub streams the dashboard: a dashboard event (the whole JSON) first,
// then update events, each with id = the view's sequence. A client that
// reconnects with Last-Event-ID gets the updates it missed when they are
// still kept, the whole dashboard otherwise; a client that falls behind
// its bounded queue gets the whole dashboard again. No client is ever left
// with a gap, and none slows the view or the others.
package live
