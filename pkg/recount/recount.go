// Package recount computes the dashboard the way the original service did:
// by reading every employee from PostgreSQL and counting every order in
// MongoDB, on every call. It is the reference the tests compare the view
// with, the baseline of the benchmarks, and what `verify` checks a running
// view against. Its cost grows with the data; the view's does not.
package recount

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/reportes/reportes/pkg/projection"
)

// Dashboard recounts the dashboard from the sources. Freshness is left
// empty: a recount is as fresh as the moment it ran.
func Dashboard(ctx context.Context, pg *pgx.Conn, orders *mongo.Collection, schema projection.Schema) (projection.Dashboard, error) {
	emps, err := employees(ctx, pg, schema)
	if err != nil {
		return projection.Dashboard{}, err
	}
	counts, total, err := countOrders(ctx, orders, schema.SellerField)
	if err != nil {
		return projection.Dashboard{}, err
	}
	d := projection.Dashboard{
		Titulo:             schema.Title,
		DetallePorVendedor: make([]projection.Seller, 0, len(emps)),
	}
	d.MetricasGlobales.TotalEmpleados = len(emps)
	d.MetricasGlobales.TotalPedidosProcesados = int(total)
	matched := map[string]bool{}
	var matchedOrders int64
	for _, e := range emps {
		s := projection.Seller{Estado: "Inactivo"}
		if e.code != nil {
			s.Empleado = *e.code
			s.PedidosRealizados = counts[*e.code]
			if !matched[*e.code] {
				matched[*e.code] = true
				matchedOrders += counts[*e.code]
			}
		}
		if e.role != nil {
			s.Rol = *e.role
		}
		if e.active != nil && *e.active {
			s.Estado = "Activo"
		}
		d.DetallePorVendedor = append(d.DetallePorVendedor, s)
	}
	d.MetricasGlobales.PedidosSinEmpleado = total - matchedOrders
	projection.SortSellers(d.DetallePorVendedor)
	return d, nil
}

// emp is one row of the employees table; NULLs are nil.
type emp struct {
	code, role *string
	active     *bool
}

func employees(ctx context.Context, pg *pgx.Conn, schema projection.Schema) ([]emp, error) {
	schemaName, table, _ := strings.Cut(schema.Employees, ".")
	q := fmt.Sprintf("SELECT %s::text, %s::text, %s FROM %s",
		pgx.Identifier{schema.CodeField}.Sanitize(), pgx.Identifier{schema.RoleField}.Sanitize(),
		pgx.Identifier{schema.ActiveField}.Sanitize(), pgx.Identifier{schemaName, table}.Sanitize())
	rows, err := pg.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read employees: %w", err)
	}
	emps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (emp, error) {
		var e emp
		return e, r.Scan(&e.code, &e.role, &e.active)
	})
	if err != nil {
		return nil, fmt.Errorf("read employees: %w", err)
	}
	return emps, nil
}

// countOrders counts the orders per seller value (those whose seller is a
// string) and in all.
func countOrders(ctx context.Context, orders *mongo.Collection, sellerField string) (map[string]int64, int64, error) {
	cur, err := orders.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + sellerField}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("count orders: %w", err)
	}
	defer cur.Close(ctx)
	counts := map[string]int64{}
	var total int64
	for cur.Next(ctx) {
		var g struct {
			ID any   `bson:"_id"`
			N  int64 `bson:"n"`
		}
		if err := cur.Decode(&g); err != nil {
			return nil, 0, fmt.Errorf("count orders: %w", err)
		}
		total += g.N
		if code, ok := g.ID.(string); ok {
			counts[code] += g.N
		}
	}
	if err := cur.Err(); err != nil {
		return nil, 0, fmt.Errorf("count orders: %w", err)
	}
	return counts, total, nil
}
