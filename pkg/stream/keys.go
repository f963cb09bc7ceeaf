package stream

import (
	"context"
	"fmt"
	"strings"
)

// Keys returns the keys of the bucket that start with prefix, which ends
// with a dot.
func (c *Checkpoints) Keys(ctx context.Context, prefix string) ([]string, error) {
	lister, err := c.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, fmt.Errorf("list checkpoints %s: %w", prefix, err)
	}
	var keys []string
	for k := range lister.Keys() {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	_ = lister.Stop() // the listing ended: stopping it again only says so
	return keys, nil
}
