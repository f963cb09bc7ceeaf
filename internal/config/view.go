package config

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/projection/pgstore"
)

// ViewModel is where the view finds employees and orders in the events.
func (c Config) ViewModel() projection.Schema {
	return projection.Schema{
		Employees: c.EmployeesTable, CodeField: c.CodeColumn, RoleField: c.RoleColumn, ActiveField: c.ActiveColumn,
		Orders: c.MongoDB + "." + c.MongoCollection, SellerField: c.SellerField, Title: c.Title,
	}
}

// OpenViewStore opens (creating and migrating it when needed) the
// PostgreSQL view store of VIEW_STORE=postgres.
func (c Config) OpenViewStore(ctx context.Context, logger *slog.Logger) (*pgstore.Store, error) {
	store, err := pgstore.Open(ctx, c.ViewPostgresURL, c.ViewSchema, c.ViewModel(),
		pgstore.WithPartitions(c.ViewPartitions), pgstore.WithSubjectPrefix(c.SubjectPrefix),
		pgstore.WithUpdatesPrefix(c.ViewUpdatesPrefix), pgstore.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("view store (VIEW_POSTGRES_URL=%s VIEW_SCHEMA=%s VIEW_PARTITIONS=%d): %w",
			Redact(c.ViewPostgresURL), c.ViewSchema, c.ViewPartitions, err)
	}
	return store, nil
}
