package projection

// Generate and Compact let the stores' tests (package projection_test)
// replay the random histories the view is tested on.
var (
	Generate = generate
	Compact  = compact
)
