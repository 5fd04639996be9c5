package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/internal/exportfile"
)

// isExportFile reports whether path starts with the header of the audit API's NDJSON export
// (GET /v1/audit-events/export?format=ndjson), as opposed to the CLI export's plain events.
func isExportFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, nil // not readable: the NDJSON path reports it (exit 3)
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 64<<10).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return exportfile.IsExport(bytes.TrimSpace(line)), nil
}

// exportKeys resolves the public keys for an export's checkpoints: --public-key, else the public
// half of the configured signing key when a configuration is readable, else none (the report
// then says signatures were not checked).
func exportKeys(pubArg, cfgPath string, stderr io.Writer) ([]ed25519.PublicKey, error) {
	if pubArg != "" {
		var keys []ed25519.PublicKey
		for _, arg := range strings.Split(pubArg, ",") {
			k, err := checkpoint.LoadPublicKey(strings.TrimSpace(arg))
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
		return keys, nil
	}
	if _, err := os.Stat(cfgPath); err == nil {
		cfg, err := loadConfig(cfgPath)
		if err == nil {
			keyPath, _ := cfg.CheckpointPaths()
			if key, err := checkpoint.LoadKey(keyPath); err == nil {
				return []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, nil
			}
		}
	}
	fmt.Fprintln(stderr, "no --public-key and no readable checkpoint key: checkpoint signatures are not checked")
	return nil, nil
}

// verifyExportCmd checks an audit API export offline and prints what was verified per chain.
func verifyExportCmd(path, only, pubArg, cfgPath string, stdout, stderr io.Writer) error {
	keys, err := exportKeys(pubArg, cfgPath, stderr)
	if err != nil {
		return verifyReadError(stdout, false, err)
	}
	start := time.Now()
	res, err := exportfile.Verify(path, keys, only)
	if err != nil {
		return verifyReadError(stdout, false, err)
	}
	h := res.Header
	kind := "filtered export (not contiguous chains): each event's hash is recomputed, and each link whose two ends are both present is checked; missing sequences are expected"
	if h.Contiguous {
		kind = "contiguous export (no filter, or a time range only): every hash and every link is checked, and a missing sequence is a gap"
	}
	fmt.Fprintf(stdout, "export of %s, sort %s, filters %s\n%s\n", h.ExportedAt.UTC().Format(time.RFC3339), h.SortOrder, filterText(h.Filters), kind)
	var total uint64
	for _, c := range res.Chains {
		total += c.Events
		if c.Problem != nil {
			fmt.Fprintf(stdout, "chain %s: INVALID at sequence %d (%s): %s\n", c.ChainID, c.Problem.Sequence, c.Problem.Reason, c.Problem.Detail)
			continue
		}
		shape := "not contiguous"
		if c.Contiguous {
			shape = "contiguous"
		}
		fmt.Fprintf(stdout, "chain %s: valid — %d events (sequence %d to %d, %s), %d hashes recomputed, %d links checked; %s\n",
			c.ChainID, c.Events, c.First, c.Last, shape, c.Hashed, c.Links, c.Checkpoint)
	}
	if res.Problem != "" {
		fmt.Fprintf(stdout, "export: INVALID: %s\n", res.Problem)
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "%d chain(s), %d events in %s\n", len(res.Chains), total, el.Round(time.Millisecond))
	if len(res.Chains) == 0 && res.Problem == "" {
		return exitError{code: exitVerifyReadFail, msg: "could not verify: no events found"}
	}
	if !res.Valid() {
		return exitError{code: 1}
	}
	return nil
}

func filterText(f map[string]string) string {
	if len(f) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range []string{"eventType", "action", "result", "resourceType", "resourceId", "actorType", "actorId", "dateFrom", "dateTo"} {
		if v, ok := f[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}
