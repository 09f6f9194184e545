package main

import (
	"flag"
	"io"
)

// newFlagSet returns a flag set for a subcommand that reports errors
// through the caller (ContinueOnError) and prints nothing itself; usage is
// printed with the command's own text.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterleaved parses args with fs, allowing flags before, between and
// after positional arguments ("policy test DIR -v" and "policy test -v DIR"
// are the same), and returns the positional arguments in order. After "--"
// every argument is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// fs.Parse stops at the first non-flag or after "--"; it consumed
		// "--" if the argument just before rest is one.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
