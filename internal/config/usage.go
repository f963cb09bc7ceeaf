package config

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteUsage writes a binary's --help: head (what the binary does and its
// commands), then every variable of Vars with its default and description,
// then where the documentation is. The variables come from Vars so that the
// help cannot drift from what Load reads.
func WriteUsage(w io.Writer, head string) error {
	var b strings.Builder
	b.WriteString(strings.TrimRight(head, "\n"))
	b.WriteString("\n\nEnvironment (values already set win over a .env file in the working directory):\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, v := range Vars {
		def := v.Default
		if def == "" {
			def = "(unset)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Help)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n%s may instead be given as NAME_FILE, the path of a file holding the value.\n", strings.Join(secretNames(), ", "))
	b.WriteString("\nDocumentation: README.md (configuration, how it works) and docs/operations.md (grants, slots, replay, recovery).\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// secretNames lists, sorted, the variables that may be given as NAME_FILE.
func secretNames() []string {
	var names []string
	for _, v := range Vars {
		if v.secret != nil {
			names = append(names, v.Name)
		}
	}
	slices.Sort(names)
	return names
}

// IsTerminal reports whether w is a terminal: the commands draw their
// progress in place there, and print plain lines otherwise.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
