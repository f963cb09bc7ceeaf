package mongo

import (
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/address"
	"go.mongodb.org/mongo-driver/mongo/description"
	"go.mongodb.org/mongo-driver/x/mongo/driver"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"
)

// TestRefused: the server's refusals of credentials and rights are found
// however the driver wraps them; other errors are not refusals.
func TestRefused(t *testing.T) {
	selection := topology.ServerSelectionError{Desc: description.Topology{Servers: []description.Server{
		{Addr: address.Address("db:27017"), LastError: topology.ConnectionError{Wrapped: driver.Error{Code: codeAuthenticationFailed}}},
	}}}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("read oplog: %w", mongo.CommandError{Code: codeUnauthorized}), true},
		{topology.ConnectionError{Wrapped: driver.Error{Code: codeAuthenticationFailed}}, true},
		{selection, true},
		{mongo.CommandError{Code: 238}, false}, // NotImplemented: the change stream answer of FerretDB
		{topology.ServerSelectionError{}, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := refused(tt.err); got != tt.want {
			t.Errorf("refused(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}
