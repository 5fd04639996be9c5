//go:build linux

package syslog

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// confirmed reports whether the peer's TCP stack acknowledged every byte written on c: the
// socket's send queue (unsent plus sent-but-unacknowledged bytes, SIOCOUTQ) is empty while the
// connection is still established, or closed by the peer only after it read everything
// (CLOSE_WAIT). A reset connection (state CLOSE, its queue dropped) fails with errConnClosed.
func confirmed(c *net.TCPConn) (bool, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("confirming delivery: %w", err)
	}
	var outq int
	var info *unix.TCPInfo
	var ierr error
	cerr := rc.Control(func(fd uintptr) {
		outq, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		if ierr != nil {
			return
		}
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	switch {
	case cerr != nil:
		return false, fmt.Errorf("confirming delivery: %w", cerr)
	case ierr != nil:
		return false, fmt.Errorf("confirming delivery: %w", ierr)
	}
	switch info.State {
	case unix.BPF_TCP_ESTABLISHED, unix.BPF_TCP_CLOSE_WAIT:
		return outq == 0, nil
	case unix.BPF_TCP_FIN_WAIT1, unix.BPF_TCP_FIN_WAIT2, unix.BPF_TCP_CLOSING, unix.BPF_TCP_LAST_ACK:
		return outq == 0, nil
	}
	return false, errConnClosed
}

// open reports whether c is established: false once the peer closed its side (CLOSE_WAIT) or
// reset it, so a write is not sent into a connection that cannot deliver it.
func open(c *net.TCPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var state uint8
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if ierr == nil {
			state = info.State
		}
	}); err != nil || ierr != nil {
		return false
	}
	return state == unix.BPF_TCP_ESTABLISHED
}
