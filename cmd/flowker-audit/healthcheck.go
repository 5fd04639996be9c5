package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

var healthcheckHelp = cmdHelp{
	usage: "healthcheck [--config FILE] [--path /readyz] [--timeout D]",
	what: `Ask the configured admin listener (admin.addr) for /readyz and exit 0 when it answers 200, 1
otherwise (with the reason on stderr). For images without a shell or HTTP client (distroless) and
for compose health checks. A wildcard listen address (":9464", "0.0.0.0:9464") is reached on
loopback.`,
	example: `flowker-audit healthcheck                       # config from $FLOWKER_AUDIT_CONFIG
flowker-audit healthcheck --config /etc/flowker-audit/config.yaml --path /healthz`,
}

func healthcheckCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("healthcheck", healthcheckHelp, stdout, stderr)
	path := fs.configFlag()
	probe := fs.String("path", "/readyz", "admin path to ask: /readyz (ready for traffic) or /healthz (alive)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if cfg.Admin.Addr == "" {
		return exitError{code: 1, msg: "healthcheck: admin.addr is empty (the admin listener is off)"}
	}
	u, err := adminURL(cfg.Admin.Addr, *probe)
	if err != nil {
		return exitError{code: 1, msg: "healthcheck: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return exitError{code: 1, msg: "healthcheck: " + err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return exitError{code: 1, msg: "healthcheck: " + err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return exitError{code: 1, msg: fmt.Sprintf("healthcheck: %s answered %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))}
	}
	fmt.Fprintf(stdout, "%s: %s\n", u, strings.TrimSpace(string(body)))
	return nil
}

// adminURL turns a listen address into a URL a local client can call: a wildcard or empty
// host becomes loopback.
func adminURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin.addr %q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
