package pgstore

import (
	"encoding/json"
	"time"
)

// Delta is what a partition publishes after each commit: the absolute
// values, in this partition, of what the commit changed. Deltas of one
// partition chain: a delta applies to a reader at position From and moves
// it to Seq. A heartbeat has From == Seq and nothing else to apply; a
// reader behind it, or one that receives a delta whose From is not its
// position, missed something and reloads the partition (Store.Load). A
// Reset asks every reader to reload the partition.
type Delta struct {
	Partition  int       `json:"p"`
	From       uint64    `json:"from"`
	Seq        uint64    `json:"seq"`
	Reset      bool      `json:"reset,omitempty"`
	Orders     int64     `json:"orders"`
	CommitTime time.Time `json:"commit_time,omitzero"`
	// Sellers holds the partition's order count of every seller code the
	// commit changed.
	Sellers map[string]int64 `json:"sellers,omitempty"`
	// Employees holds the rows the commit wrote, Gone the keys of those it
	// deleted (partition 0 only).
	Employees []Employee `json:"employees,omitempty"`
	Gone      [][]byte   `json:"gone,omitempty"`
}

// Employee is an employee's row in a Delta or a State.
type Employee struct {
	Key    []byte `json:"key"`
	Code   string `json:"code"`
	Role   string `json:"role"`
	Active bool   `json:"active"`
}

// maxDelta bounds a delta's size: a bigger one (a snapshot's end that
// removed many sellers' orders) is published as a Reset, well under NATS's
// default 1 MiB payload limit.
const maxDelta = 512 << 10

func (d Delta) encode() ([]byte, error) {
	data, err := json.Marshal(d)
	if err != nil || len(data) <= maxDelta {
		return data, err
	}
	return json.Marshal(Delta{Partition: d.Partition, From: d.Seq, Seq: d.Seq, Orders: d.Orders, Reset: true})
}

// DecodeDelta decodes a delta.
func DecodeDelta(data []byte) (Delta, error) {
	var d Delta
	err := json.Unmarshal(data, &d)
	return d, err
}
