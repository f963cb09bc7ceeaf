package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// OplogSize is the size of the capped oplog the local FerretDB gets. Tailing
// it re-reads it on every poll, so it is kept modest.
const OplogSize = 256 << 20

// Ferret is an embedded FerretDB speaking the MongoDB wire protocol, backed
// by SQLite files.
type Ferret struct {
	URI    string
	dir    string
	port   int
	cancel context.CancelFunc
	done   chan struct{}
}

// StartFerret starts FerretDB storing under dir on port (0: a free one) and
// makes sure local.oplog.rs exists so changes are logged.
func StartFerret(ctx context.Context, dir string, port int) (*Ferret, error) {
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	f := &Ferret{dir: dir, port: port}
	return f, f.start(ctx)
}

// newFerretMu serialises ferretdb.New, which writes package state, so that
// tests running in parallel can each start one.
var newFerretMu sync.Mutex

func (f *Ferret) start(ctx context.Context) error {
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", f.dir, err)
	}
	newFerretMu.Lock()
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: fmt.Sprintf("127.0.0.1:%d", f.port)},
		Handler:   "sqlite",
		SQLiteURL: "file:" + f.dir + "/",
		// Errors only: FerretDB writes a change's oplog entry after the
		// change itself and logs, without failing the request, when that
		// write fails; the change is then invisible to a tail.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	newFerretMu.Unlock()
	if err != nil {
		return fmt.Errorf("configure ferretdb: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() {
		defer close(f.done)
		_ = fdb.Run(runCtx)
	}()
	f.URI = fdb.MongoDBURI()
	return f.ensureOplog(ctx)
}

func (f *Ferret) ensureOplog(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(f.URI))
	if err != nil {
		return fmt.Errorf("connect to ferretdb: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck
	for {
		err = client.Ping(ctx, nil)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("ferretdb did not answer: %w", err)
	}
	names, err := client.Database("local").ListCollectionNames(ctx, bson.D{{Key: "name", Value: "oplog.rs"}})
	if err != nil {
		return fmt.Errorf("list local collections: %w", err)
	}
	if len(names) > 0 {
		return nil
	}
	err = client.Database("local").CreateCollection(ctx, "oplog.rs", options.CreateCollection().SetCapped(true).SetSizeInBytes(OplogSize))
	var ce mongo.CommandError
	if err != nil && (!errors.As(err, &ce) || !ce.HasErrorCode(48)) { // 48: NamespaceExists
		return fmt.Errorf("create local.oplog.rs: %w", err)
	}
	return nil
}

// Stop shuts FerretDB down.
func (f *Ferret) Stop() {
	f.cancel()
	<-f.done
}

// Restart stops FerretDB and starts it again on the same port and files.
func (f *Ferret) Restart(ctx context.Context) error {
	f.Stop()
	return f.start(ctx)
}
