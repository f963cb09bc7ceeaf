package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// workload changes both sources at random: orders inserted, moved to
// another seller, deleted; employees hired, renamed (code changed), moved
// to another role, deactivated and deleted. Some orders name sellers that
// are not employees.
type workload struct {
	e     *env
	rng   *rand.Rand
	codes []string
	next  int
	ops   map[string]int
}

func newWorkload(e *env, seed uint64) *workload {
	return &workload{e: e, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ops: map[string]int{}}
}

func (w *workload) seller() string {
	if len(w.codes) == 0 || w.rng.IntN(10) == 0 {
		return fmt.Sprintf("X-%02d", w.rng.IntN(5)) // not an employee (yet)
	}
	return w.codes[w.rng.IntN(len(w.codes))]
}

func (w *workload) hire(t testing.TB) {
	w.next++
	code := fmt.Sprintf("S-%03d", w.next)
	if w.rng.IntN(8) == 0 {
		code = fmt.Sprintf("X-%02d", w.rng.IntN(5)) // a seller known from orders becomes an employee
	}
	_, err := w.e.pg.Exec(context.Background(),
		`INSERT INTO empleados (codigo, nombre, rol, activo) VALUES ($1, $2, $3, $4) ON CONFLICT (codigo) DO NOTHING`,
		code, "Empleado "+code, []string{"operario", "vendedor", "supervisor"}[w.rng.IntN(3)], w.rng.IntN(4) != 0)
	if err != nil {
		t.Fatal(err)
	}
	w.codes = append(w.codes, code)
	w.ops["hire"]++
}

func (w *workload) orders(t testing.TB, n int) {
	docs := make([]any, n)
	for i := range docs {
		docs[i] = bson.D{{Key: "vendedor", Value: w.seller()}, {Key: "producto", Value: "p"}, {Key: "cantidad", Value: w.rng.IntN(100)}}
	}
	if _, err := w.e.orders.InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	w.ops["order_insert"] += n
}

// step performs one random change.
func (w *workload) step(t testing.TB) {
	ctx := context.Background()
	switch r := w.rng.IntN(100); {
	case r < 45:
		if _, err := w.e.orders.InsertOne(ctx, bson.D{{Key: "vendedor", Value: w.seller()}, {Key: "producto", Value: "p"}}); err != nil {
			t.Fatal(err)
		}
		w.ops["order_insert"]++
	case r < 65:
		id, ok := w.randomOrder(t)
		if !ok {
			return
		}
		if _, err := w.e.orders.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "vendedor", Value: w.seller()}}}}); err != nil {
			t.Fatal(err)
		}
		w.ops["order_move"]++
	case r < 80:
		id, ok := w.randomOrder(t)
		if !ok {
			return
		}
		if _, err := w.e.orders.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
			t.Fatal(err)
		}
		w.ops["order_delete"]++
	case r < 86:
		w.hire(t)
	case r < 90:
		w.employee(t, `UPDATE empleados SET rol = 'supervisor', nombre = nombre || '.' WHERE codigo = $1`, "employee_update")
	case r < 94:
		w.employee(t, `UPDATE empleados SET activo = NOT coalesce(activo, false) WHERE codigo = $1`, "employee_toggle")
	case r < 97:
		w.employee(t, `UPDATE empleados SET codigo = codigo || 'R' WHERE codigo = $1`, "employee_rename")
	default:
		w.employee(t, `DELETE FROM empleados WHERE codigo = $1`, "employee_delete")
	}
}

func (w *workload) employee(t testing.TB, sql, op string) {
	if len(w.codes) == 0 {
		return
	}
	i := w.rng.IntN(len(w.codes))
	code := w.codes[i]
	if _, err := w.e.pg.Exec(context.Background(), sql, code); err != nil {
		t.Fatal(err)
	}
	switch op {
	case "employee_rename":
		w.codes[i] = code + "R"
	case "employee_delete":
		w.codes = append(w.codes[:i], w.codes[i+1:]...)
	}
	w.ops[op]++
}

func (w *workload) randomOrder(t testing.TB) (any, bool) {
	cur, err := w.e.orders.Aggregate(context.Background(), []bson.D{{{Key: "$sample", Value: bson.D{{Key: "size", Value: 1}}}}})
	if err != nil {
		// Not every compatible server has $sample: fall back to a skip.
		n, cerr := w.e.orders.CountDocuments(context.Background(), bson.D{})
		if cerr != nil || n == 0 {
			return nil, false
		}
		var doc bson.M
		if err := w.e.orders.FindOne(context.Background(), bson.D{}, options.FindOne().SetSkip(w.rng.Int64N(n))).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc["_id"], true
	}
	defer cur.Close(context.Background())
	if !cur.Next(context.Background()) {
		return nil, false
	}
	var doc bson.M
	if err := cur.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc["_id"], true
}
