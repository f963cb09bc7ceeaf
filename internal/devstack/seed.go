package devstack

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// EmployeesDDL creates the original service's employees table.
const EmployeesDDL = `CREATE TABLE IF NOT EXISTS public.empleados (
	codigo text PRIMARY KEY,
	nombre text,
	rol    text,
	activo boolean
)`

// Seed creates the employees table and loads the original service's sample
// data (employee S-01, operario, active, with two orders) where the table and
// the collection are empty.
func Seed(ctx context.Context, pgURL, mongoURI, db, coll string) error {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, EmployeesDDL); err != nil {
		return fmt.Errorf("create empleados: %w", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO public.empleados (codigo, nombre, rol, activo)
		SELECT 'S-01', 'Sofía Ramírez', 'operario', true WHERE NOT EXISTS (SELECT 1 FROM public.empleados)`); err != nil {
		return fmt.Errorf("seed empleados: %w", err)
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(mongoURI))
	if err != nil {
		return fmt.Errorf("connect to mongo: %w", err)
	}
	defer client.Disconnect(ctx) //nolint:errcheck
	orders := client.Database(db).Collection(coll)
	n, err := orders.CountDocuments(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("count orders: %w", err)
	}
	if n > 0 {
		return nil
	}
	_, err = orders.InsertMany(ctx, []any{
		bson.D{{Key: "vendedor", Value: "S-01"}, {Key: "producto", Value: "Tornillos M6"}, {Key: "cantidad", Value: 100}},
		bson.D{{Key: "vendedor", Value: "S-01"}, {Key: "producto", Value: "Tuercas M6"}, {Key: "cantidad", Value: 80}},
	})
	if err != nil {
		return fmt.Errorf("seed orders: %w", err)
	}
	return nil
}
