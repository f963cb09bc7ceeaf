package projection

import (
	"errors"
	"strings"
)

// Schema says where the view finds employees and orders in the events.
type Schema struct {
	// Employees is the employees table as events name it ("public.empleados").
	Employees string
	// CodeField, RoleField and ActiveField are columns of that table.
	CodeField, RoleField, ActiveField string
	// Orders is the orders collection as events name it ("inventory_db.orders").
	Orders string
	// SellerField is the path of the seller's code in an order; dots descend
	// into embedded documents ("vendedor", "venta.vendedor.codigo").
	SellerField string
	// Title is the dashboard's titulo.
	Title string
}

// DefaultSchema is the original service's data model.
func DefaultSchema() Schema {
	return Schema{
		Employees: "public.empleados", CodeField: "codigo", RoleField: "rol", ActiveField: "activo",
		Orders: "inventory_db.orders", SellerField: "vendedor",
		Title: "Dashboard Operativo - Sprint 4",
	}
}

func (s Schema) validate() error {
	if s.Employees == "" || s.Orders == "" || s.CodeField == "" || s.SellerField == "" {
		return errors.New("projection schema: employees, orders, code field and seller field are required")
	}
	return nil
}

func (s Schema) sellerPath() []string { return strings.Split(s.SellerField, ".") }
