//go:build !linux

package loadtest

import (
	"os/exec"
	"time"
)

func processTreeCPU(int) (time.Duration, bool) { return 0, false }

func selfCPU() time.Duration { return 0 }

func dieWithParent(*exec.Cmd) {}
