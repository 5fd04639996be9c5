package main

import (
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

// digestKeyFile is where the sidecar keeps a generated capture.digest_key.
const digestKeyFile = "digest.key"

const auditHashUsage = "usage: flowker-audit audit-hash [--config FILE] [--match HEX] VALUE|-|@FILE"

// auditHashCmd prints the keyed digest events carry for a value (Vault's `audit-hash` is the
// model): an operator who knows a body can check it against an event's request.hmacSha256 or
// response.hmacSha256, while a reader of the trail without the key cannot test guesses. VALUE is
// taken literally; "-" reads standard input and @FILE a file, byte for byte (a body's digest
// covers its exact bytes). With --match, it compares instead: exit 0 when equal, 1 when not.
func auditHashCmd(args []string, stdout, stderr io.Writer) error {
	fs := newCommand("audit-hash", cmdHelp{usage: "audit-hash [--config FILE] [--match HEX] VALUE|-|@FILE",
		what:    "Print the keyed digest (HMAC-SHA-256 under capture.digest_key) that events carry for a value,\nso an operator who knows a body can check it against an event's request.hmacSha256 or\nresponse.hmacSha256; a reader of the trail without the key cannot test guesses. VALUE is taken\nliterally; - reads standard input and @FILE a file, byte for byte. With --match, compare\ninstead: exit 0 when equal, 1 when not.",
		example: "flowker-audit audit-hash --config /etc/flowker-audit/config.yaml @body.json\nflowker-audit audit-hash --match 3f1c... '{\"name\":\"pc-1\"}'"}, stdout, stderr)
	path := fs.configFlag()
	match := fs.String("match", "", "a digest from an event: exit 0 when VALUE has it, 1 when not")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitError{code: 2, msg: auditHashUsage}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	key := []byte(cfg.Capture.DigestKey)
	if len(key) == 0 {
		kp := filepath.Join(cfg.DataDir, digestKeyFile)
		b, err := os.ReadFile(kp)
		if err != nil {
			return fmt.Errorf("no capture.digest_key and no %s yet (start the sidecar once): %w", kp, err)
		}
		key = []byte(strings.TrimSpace(string(b)))
	}
	value, err := auditHashValue(fs.Arg(0))
	if err != nil {
		return err
	}
	sum := capture.Digest(key, value)
	if *match == "" {
		fmt.Fprintln(stdout, sum)
		return nil
	}
	want, err := hex.DecodeString(strings.TrimSpace(*match))
	got, _ := hex.DecodeString(sum)
	if err != nil || !hmac.Equal(want, got) {
		fmt.Fprintln(stdout, "no match")
		return exitError{code: 1}
	}
	fmt.Fprintln(stdout, "match")
	return nil
}

func auditHashValue(arg string) ([]byte, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return b, nil
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", arg[1:], err)
		}
		return b, nil
	}
	return []byte(arg), nil
}
