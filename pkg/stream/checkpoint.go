package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultCheckpointBucket is the key-value bucket source positions are kept in.
const DefaultCheckpointBucket = "reportes_positions"

// Checkpoints stores each source's resume position in a JetStream key-value
// bucket, next to the events it describes. Sources save a position only after
// the events before it were acknowledged.
type Checkpoints struct {
	kv jetstream.KeyValue
}

// CheckpointOption configures OpenCheckpoints.
type CheckpointOption func(*jetstream.KeyValueConfig)

// WithCheckpointReplicas sets the replicas of the bucket when it is created
// (default 1).
func WithCheckpointReplicas(n int) CheckpointOption {
	return func(c *jetstream.KeyValueConfig) { c.Replicas = n }
}

// OpenCheckpoints opens the bucket, creating it when missing. An existing
// bucket is used as it is: replicas, limits or placement an operator set
// stay across restarts.
func OpenCheckpoints(ctx context.Context, js jetstream.JetStream, bucket string, opts ...CheckpointOption) (*Checkpoints, error) {
	if bucket == "" {
		bucket = DefaultCheckpointBucket
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "reportes source positions",
		History:     5,
		Storage:     jetstream.FileStorage,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	kv, err := OpenOrCreate(ctx,
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) },
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, cfg) })
	if err != nil {
		return nil, fmt.Errorf("open checkpoint bucket %s: %w", bucket, err)
	}
	return &Checkpoints{kv: kv}, nil
}

// Load decodes the checkpoint stored under key into v. It reports false when
// there is none.
func (c *Checkpoints) Load(ctx context.Context, key string, v any) (bool, error) {
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load checkpoint %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return false, fmt.Errorf("decode checkpoint %s: %w", key, err)
	}
	return true, nil
}

// Save stores v under key.
func (c *Checkpoints) Save(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode checkpoint %s: %w", key, err)
	}
	if _, err := c.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", key, err)
	}
	return nil
}

// Delete removes the checkpoint under key.
func (c *Checkpoints) Delete(ctx context.Context, key string) error {
	if err := c.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete checkpoint %s: %w", key, err)
	}
	return nil
}
