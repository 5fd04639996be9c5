// Package proctest runs an external server for a test harness (internal/rsyslogtest,
// internal/otelcoltest): it starts the process with its output appended to a file, waits until
// it accepts TCP connections, stops it with a signal (SIGTERM: an orderly stop; SIGKILL: a
// crash) and starts it again on the same ports.
package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a server process that can be started, stopped and started again.
type Process struct {
	name string   // for messages
	argv []string // the command line
	log  string   // file receiving standard output and error

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when stopped
	exited chan struct{} // closed when cmd has been waited for
}

// New returns a stopped process that runs argv (argv[0] is the binary) with its output appended
// to the file log; name names it in errors.
func New(name, log string, argv ...string) *Process {
	return &Process{name: name, argv: argv, log: log}
}

// Start starts the process and waits until each of addrs accepts a TCP connection, for at most
// timeout. It may be called from any goroutine.
func (p *Process) Start(timeout time.Duration, addrs ...string) error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	defer logf.Close()
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return fmt.Errorf("%s exited at start:\n%s", p.name, p.Output())
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s is not listening on %s after %s: %w\n%s", p.name, addr, timeout, err, p.Output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Stop sends sig to the process and waits for it to exit (killing it after 30 s). It does
// nothing when the process is not running.
func (p *Process) Stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Pid returns the running process's id (0 when stopped).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Output returns what the process wrote so far (every start appends).
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
