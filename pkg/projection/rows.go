package projection

import (
	"encoding/json"
	"fmt"

	"github.com/reportes/reportes/pkg/cdc"
)

// EmployeeRow is an employee as the view holds it: what the dashboard shows
// of the row, and the version of the event that last set it.
type EmployeeRow struct {
	Code    string
	Role    string
	Active  bool
	Version uint64
}

// Employee returns the employee that the row of ev, an insert, update or
// snapshot row of the employees table, makes of prev (nil for a new one; a
// field the row lacks keeps prev's value), and what in the row it could not
// use. The error is a *Problem when the row is no JSON object. Every store
// of the view reads employees with it, so they agree on every row.
func (s Schema) Employee(ev *cdc.Event, prev *EmployeeRow) (EmployeeRow, []string, error) {
	var row map[string]json.RawMessage
	if err := json.Unmarshal(ev.After, &row); err != nil {
		return EmployeeRow{}, nil, &Problem{EventID: ev.ID, Reason: "employee row is not a JSON object: " + err.Error()}
	}
	next := EmployeeRow{Version: ev.Version}
	if prev != nil {
		next = *prev
		next.Version = ev.Version
	}
	var problems []string
	if raw, ok := row[s.CodeField]; ok {
		var code *string
		if json.Unmarshal(raw, &code) != nil || code == nil {
			problems = append(problems, fmt.Sprintf("%s is %s, want text", s.CodeField, raw))
			next.Code = ev.Key
		} else {
			next.Code = *code
		}
	} else if prev == nil {
		next.Code = ev.Key
	}
	if raw, ok := row[s.RoleField]; ok && s.RoleField != "" {
		var role *string
		if json.Unmarshal(raw, &role) != nil {
			problems = append(problems, fmt.Sprintf("%s is %s, want text", s.RoleField, raw))
		}
		next.Role = ""
		if role != nil {
			next.Role = *role
		}
	}
	if raw, ok := row[s.ActiveField]; ok && s.ActiveField != "" {
		var active *bool
		if json.Unmarshal(raw, &active) != nil {
			problems = append(problems, fmt.Sprintf("%s is %s, want boolean", s.ActiveField, raw))
		}
		// NULL counts as inactive, like Python's truthiness in the original.
		next.Active = active != nil && *active
	}
	return next, problems, nil
}

// SellerReader returns what reads the seller code of an order document,
// or the reason it has no usable one (the order then counts only in the
// totals), as the View does.
func (s Schema) SellerReader() func(doc json.RawMessage) ([]byte, string) {
	path := s.sellerPath()
	return func(doc json.RawMessage) ([]byte, string) { return sellerOf(doc, path) }
}
