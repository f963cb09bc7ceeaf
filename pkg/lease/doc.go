// Package lease gives processes exclusive, expiring ownership of names, kept
// in a NATS JetStream key-value bucket whose TTL (the stream's MaxAge) makes a
// key that is not rewritten within the TTL disappear.
//
// A [Store] is the bucket. [Store.Acquire] creates a name's key (it succeeds
// only when the key is absent, deleted or expired, or already holds the same
// holder string); [Lease.Renew] rewrites it on the revision last written and
// [Lease.Release] deletes it on that revision, so that no one ever renews or
// deletes a lease another process took. A [Keeper] keeps trying to hold one
// name and runs work while it does (ingestor failover: one lease per
// source); a [Share] spreads a fixed number of numbered partitions among the
// members that run it (partitioned projectors).
//
// # Contract
//
// Guaranteed, as seen by NATS: at most one holder per name at any time,
// because every write is a compare-and-set on the key's last revision. Holder
// strings must be unique among live processes (a pod name, a hostname plus a
// pid): a holder may take over a lease that carries its own holder string
// (a restarted process reclaims its lease at once instead of waiting for the
// TTL), so two live processes with the same holder string would both hold.
//
// Guaranteed to the work of a Keeper or a Share: its context is cancelled
// when a renewal finds the lease lost, and at the latest 2/3 of the TTL
// after the last successful write was sent, whatever NATS does (an outage,
// a partition, a slow server); renewals are tried every TTL/3 and retried
// every TTL/12 until then. A key cannot expire before the TTL has passed
// since that write was sent, so the work has at least TTL/3 to stop before
// a standby can acquire the name. Work must return promptly once its
// context is cancelled; it is not started again until it has. A lease taken
// from under its holder (an operator deleting the key) is learned at the
// next renewal, within TTL/3. When NATS is back after an outage, the holder
// takes its own lease over if it has not expired, or acquires the name
// again if no one else did, and starts the work again.
//
// Takeover time: when a holder dies without releasing, its key expires at
// most one TTL after its last renewal, plus the server's expiry granularity
// (nats-server checks ages at most every 250ms). A standby that watches the
// key learns of the expiry at once when the bucket has limit markers (Open
// creates buckets with them), otherwise from polling every TTL/6; so a
// standby takes over within about TTL + 250ms with markers and TTL + TTL/6 +
// 250ms without, both inside TTL + the renew interval (TTL/3) for TTLs of
// 2s and more. A holder that stops gracefully releases its lease and a
// watching standby takes over at once.
//
// Not guaranteed: that work has stopped everywhere at the moment another
// process starts. The guarantee above rests on the holder's monotonic clock
// running at the server's rate, on work actually returning within TTL/3 of
// its cancellation, and on a process not being paused (GC, a frozen VM,
// SIGSTOP) between checking its context and writing: a process resumed
// after a pause can still write once with a lease it lost. A stale writer
// can only be stopped by the data layer, so writers fence themselves there
// (with a generation or epoch checked on every write; [Lease.Revision] grows
// with every acquisition and renewal of a name and can serve as one). The
// lease decides who works; it never makes the data correct by itself.
package lease
