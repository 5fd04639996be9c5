// Package checkpoint signs the head of a chain at intervals and checks chains against those
// signatures.
//
// A hash chain shows any change to, or removal of, an event that has a successor; it cannot show
// that its newest events were cut off, because the shortened chain is itself a valid chain. A
// checkpoint closes that gap: an Ed25519 signature over (chainId, sequence, hash, time) of the
// chain's head. Checkpoints are appended to an NDJSON log beside the journal, meant to be shipped
// to an external witness (log shipping, object storage with retention, a ticket). A chain that
// ends before a signed checkpoint's sequence, or that holds another hash at that sequence, has
// been truncated or rewritten.
//
// The signing key lives on the sidecar's host, so checkpoints prove nothing against someone who
// controls that host and the witness copy both: their value is in leaving the host promptly.
package checkpoint

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Checkpoint is one signed chain head, as written to the log (one JSON object per line).
type Checkpoint struct {
	ChainID  string    `json:"chainId"`
	Sequence uint64    `json:"sequence"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time"`
	// KeyID names the signing key: the first 8 bytes of SHA-256 of the public key, in hex.
	KeyID string `json:"keyId"`
	// Signature is the Ed25519 signature of Message(), base64 (standard alphabet, padded).
	Signature string `json:"signature"`
}

// check rejects field values that would make Message ambiguous or non-canonical: a chain id
// with control characters (a newline could shift fields between lines), a hash that is not 64
// lowercase hex digits, sequence 0, a time finer than the microseconds the message carries.
func (c Checkpoint) check() error {
	if c.ChainID == "" || strings.IndexFunc(c.ChainID, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("checkpoint: chain id %q is empty or holds control characters", c.ChainID)
	}
	if len(c.Hash) != 64 || strings.Trim(c.Hash, "0123456789abcdef") != "" {
		return fmt.Errorf("checkpoint: hash %q is not 64 lowercase hex digits", c.Hash)
	}
	if c.Sequence == 0 {
		return errors.New("checkpoint: sequence 0")
	}
	if !c.Time.Equal(c.Time.Truncate(time.Microsecond)) {
		return errors.New("checkpoint: time finer than microseconds")
	}
	return nil
}

// Message returns the bytes that are signed: a fixed header and one "name=value" line per field,
// the time in RFC 3339 UTC with microseconds (the chain's own precision). Sign and Verify accept
// only field values that keep it unambiguous (see check).
func (c Checkpoint) Message() []byte {
	var b strings.Builder
	b.WriteString("flowker-audit checkpoint v1\n")
	b.WriteString("chainId=" + c.ChainID + "\n")
	b.WriteString("sequence=" + strconv.FormatUint(c.Sequence, 10) + "\n")
	b.WriteString("hash=" + c.Hash + "\n")
	b.WriteString("time=" + c.Time.UTC().Format(chain.TimestampLayout) + "\n")
	return []byte(b.String())
}

// KeyID returns the identifier of a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Verify checks c's signature with pub.
func (c Checkpoint) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("checkpoint: public key must be 32 bytes")
	}
	if c.KeyID != KeyID(pub) {
		return fmt.Errorf("checkpoint: signed by key %s, not by the given key %s", c.KeyID, KeyID(pub))
	}
	if err := c.check(); err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("checkpoint: signature is not 64 bytes of base64")
	}
	if !ed25519.Verify(pub, c.Message(), sig) {
		return errors.New("checkpoint: signature does not match its fields")
	}
	return nil
}

// Signer signs chain heads.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// Public returns the verification key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID returns the identifier of the signer's key.
func (s *Signer) KeyID() string { return s.id }

// Sign returns the checkpoint of (chainID, seq, hash) at time t (truncated to microseconds).
func (s *Signer) Sign(chainID string, seq uint64, hash string, t time.Time) (Checkpoint, error) {
	c := Checkpoint{ChainID: chainID, Sequence: seq, Hash: hash, Time: t.UTC().Truncate(time.Microsecond), KeyID: s.id}
	if err := c.check(); err != nil {
		return Checkpoint{}, err
	}
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, c.Message()))
	return c, nil
}

// LoadOrCreateKey reads the Ed25519 private key stored at path as the hex of its 32-byte seed,
// or, when the file does not exist, generates one and writes it with mode 0600.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadKey(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, false, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("creating checkpoint key: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(seed) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = syncDir(filepath.Dir(path)) // the new name must survive a power loss too
	}
	if werr != nil {
		return nil, false, fmt.Errorf("writing checkpoint key: %w", werr)
	}
	return ed25519.NewKeyFromSeed(seed), true, nil
}

// LooseKeyMode reports whether the key file at path can be read by its group or by others.
func LooseKeyMode(path string) (os.FileMode, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return fi.Mode().Perm(), fi.Mode().Perm()&0o077 != 0
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadKey reads a private key file written by LoadOrCreateKey; it never creates one.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint key: %w", err)
	}
	key, err := parseSeed(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// LoadPublicKey reads a verification key given as the hex of its 32 bytes, or as the path of a
// file holding that hex (what `flowker-audit checkpoints public-key` prints).
func LoadPublicKey(arg string) (ed25519.PublicKey, error) {
	s := arg
	if b, err := hex.DecodeString(arg); err != nil || len(b) != ed25519.PublicKeySize {
		raw, err := os.ReadFile(arg)
		if err != nil {
			return nil, fmt.Errorf("public key: %q is not 64 hex characters, nor a readable file: %w", arg, err)
		}
		s = strings.TrimSpace(string(raw))
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %s: want the 64 hex characters of an Ed25519 public key", arg)
	}
	return ed25519.PublicKey(b), nil
}

// LoadPublicKeys loads each of args with LoadPublicKey (blank entries are skipped).
func LoadPublicKeys(args []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, a := range args {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		k, err := LoadPublicKey(a)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func parseSeed(s string) (ed25519.PrivateKey, error) {
	seed, err := hex.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("damaged checkpoint key (expected the 64 hex characters of an Ed25519 seed)")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
