package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time: -ldflags "-X main.version=... -X main.commit=... -X main.buildDate=...".
// The Dockerfile passes them as build arguments (its build context has no .git, so Go's own VCS
// stamping cannot supply the commit there).
var (
	version   = "dev"
	commit    = ""
	buildDate = ""
)

// buildCommit returns the commit the binary was built from: -X main.commit, else Go's VCS
// stamp (a build inside a git checkout), else "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

// builtAt returns the build date: -X main.buildDate, else the VCS commit time, else "unknown".
func builtAt() string {
	if buildDate != "" {
		return buildDate
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				return s.Value + " (commit time)"
			}
		}
	}
	return "unknown"
}

func versionCmd(args []string, stdout, stderr io.Writer) error {
	fs := newCommand("version", cmdHelp{usage: "version", what: "Print the version, the commit, the build date and the Go version the binary was built with.",
		example: "flowker-audit version"}, stdout, stderr)
	if err := fs.parse(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "flowker-audit %s\n  commit:     %s\n  built:      %s\n  go version: %s %s/%s\n",
		version, buildCommit(), builtAt(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
