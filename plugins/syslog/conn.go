package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// conn is one connection to the receiver.
type conn struct {
	w   net.Conn     // what messages are written to: *tls.Conn, *net.TCPConn or *net.UDPConn
	tcp *net.TCPConn // the TCP connection underneath (nil for udp)
}

// dial connects to the receiver (and completes the TLS handshake), bounded by ctx and
// the dial timeout.
func dial(ctx context.Context, cfg *Config, tlsCfg *tls.Config) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.DialTimeout))
	defer cancel()
	network := "tcp"
	if cfg.Transport == TransportUDP {
		network = "udp"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Address, err)
	}
	out := &conn{w: c}
	if tc, ok := c.(*net.TCPConn); ok {
		out.tcp = tc
	}
	if cfg.Transport == TransportTLS {
		tc := tls.Client(c, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", cfg.Address, err)
		}
		out.w = tc
	}
	return out, nil
}

// write writes b whole, or fails; ctx's end interrupts it.
func (c *conn) write(ctx context.Context, b []byte) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.w.SetWriteDeadline(dl)
	} else {
		_ = c.w.SetWriteDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.w.SetWriteDeadline(time.Now()) })
	defer stop()
	_, err := c.w.Write(b)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("writing: %w (%w)", ctx.Err(), err)
	}
	return err
}

// confirm waits until the receiver's host acknowledged, at the TCP level, every byte written so
// far (see confirmed). ctx bounds the wait.
func (c *conn) confirm(ctx context.Context) error {
	if c.tcp == nil {
		return nil
	}
	wait := 20 * time.Microsecond
	for {
		done, err := confirmed(c.tcp)
		if err != nil || done {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the receiver to acknowledge: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Millisecond)
	}
}

// alive reports whether the connection can still carry messages: false when the receiver
// closed or reset it (where the platform tells; see open).
func (c *conn) alive() bool {
	if c.tcp == nil {
		return true
	}
	return open(c.tcp)
}

func (c *conn) close() error { return c.w.Close() }

// errConnClosed is returned by confirmed when the connection ended before the receiver
// acknowledged everything.
var errConnClosed = errors.New("the receiver closed or reset the connection before acknowledging every message")
