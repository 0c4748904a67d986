package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// flagSet wraps flag.FlagSet with environment-variable fallbacks: a flag
// bound to a variable takes the variable's value as its default, and its
// usage line names the variable. A bad value, from the command line or the
// environment, is an error naming where it came from.
type flagSet struct {
	*flag.FlagSet
	lookup  func(string) (string, bool)
	envErrs []error
}

func newFlagSet(name string, lookup func(string) (string, bool)) *flagSet {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &flagSet{FlagSet: fs, lookup: lookup}
}

func (f *flagSet) usage(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

func (f *flagSet) env(name, env string, parse func(string) error) {
	if env == "" {
		return
	}
	if v, ok := f.lookup(env); ok && v != "" {
		if err := parse(v); err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("invalid value %q for $%s (flag -%s): %v", v, env, name, err))
		}
	}
}

func (f *flagSet) stringVar(p *string, name, env, def, usage string) {
	f.StringVar(p, name, def, f.usage(usage, env))
	f.env(name, env, func(v string) error { *p = v; return nil })
}

func (f *flagSet) intVar(p *int, name, env string, def int, usage string) {
	f.IntVar(p, name, def, f.usage(usage, env))
	f.env(name, env, func(v string) error {
		n, err := strconv.Atoi(v)
		*p = n
		return err
	})
}

func (f *flagSet) durationVar(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.DurationVar(p, name, def, f.usage(usage, env))
	f.env(name, env, func(v string) error {
		d, err := time.ParseDuration(v)
		*p = d
		return err
	})
}

func (f *flagSet) boolVar(p *bool, name, env string, def bool, usage string) {
	f.BoolVar(p, name, def, f.usage(usage, env))
	f.env(name, env, func(v string) error {
		b, err := strconv.ParseBool(v)
		*p = b
		return err
	})
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parse parses args, reporting environment errors first.
func (f *flagSet) parse(args []string) error {
	if len(f.envErrs) > 0 {
		return f.envErrs[0]
	}
	return f.Parse(args)
}
