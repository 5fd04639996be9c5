package checkpoint

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Anchor is a signed retention anchor: the sidecar's statement that the events of a chain up to
// and including Sequence were removed from a store on purpose (retention), and that the last of
// them had Hash. Verification of a store that applied retention starts after the newest valid
// anchor, linking the first remaining event to Hash, and says so: the removed events are not
// reported as missing, and a store cannot claim a removal nobody with the key signed (an unsigned
// or forged anchor is itself a problem, and verification then starts from the genesis, where the
// missing events show).
//
// The message signed differs from a checkpoint's (its own header), so a checkpoint can never be
// passed off as an anchor.
type Anchor struct {
	ChainID  string    `json:"chainId"`
	Sequence uint64    `json:"sequence"` // the last removed event
	Hash     string    `json:"hash"`     // its hash
	Cutoff   time.Time `json:"cutoff"`   // events older than this were eligible
	Time     time.Time `json:"time"`     // when the anchor was signed
	KeyID    string    `json:"keyId"`
	// Signature is the Ed25519 signature of Message(), base64 (standard alphabet, padded).
	Signature string `json:"signature"`
}

// Message returns the bytes that are signed.
func (a Anchor) Message() []byte {
	var b strings.Builder
	b.WriteString("flowker-audit retention anchor v1\n")
	b.WriteString("chainId=" + a.ChainID + "\n")
	b.WriteString("sequence=" + strconv.FormatUint(a.Sequence, 10) + "\n")
	b.WriteString("hash=" + a.Hash + "\n")
	b.WriteString("cutoff=" + a.Cutoff.UTC().Format(chain.TimestampLayout) + "\n")
	b.WriteString("time=" + a.Time.UTC().Format(chain.TimestampLayout) + "\n")
	return []byte(b.String())
}

// check rejects values that would make Message ambiguous (the checkpoint rules, plus the cutoff).
func (a Anchor) check() error {
	if err := (Checkpoint{ChainID: a.ChainID, Sequence: a.Sequence, Hash: a.Hash, Time: a.Time}).check(); err != nil {
		return fmt.Errorf("retention anchor: %w", err)
	}
	if !a.Cutoff.Equal(a.Cutoff.Truncate(time.Microsecond)) {
		return errors.New("retention anchor: cutoff finer than microseconds")
	}
	return nil
}

// SignAnchor signs the retention anchor of (chainID, seq, hash) for events older than cutoff, at
// time t. Times are truncated to microseconds.
func (s *Signer) SignAnchor(chainID string, seq uint64, hash string, cutoff, t time.Time) (Anchor, error) {
	a := Anchor{ChainID: chainID, Sequence: seq, Hash: hash, Cutoff: cutoff.UTC().Truncate(time.Microsecond),
		Time: t.UTC().Truncate(time.Microsecond), KeyID: s.id}
	if err := a.check(); err != nil {
		return Anchor{}, err
	}
	a.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, a.Message()))
	return a, nil
}

// Verify checks a's signature with pub.
func (a Anchor) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("retention anchor: public key must be 32 bytes")
	}
	if a.KeyID != KeyID(pub) {
		return fmt.Errorf("retention anchor: signed by key %s, not by the given key %s", a.KeyID, KeyID(pub))
	}
	if err := a.check(); err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(a.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("retention anchor: signature is not 64 bytes of base64")
	}
	if !ed25519.Verify(pub, a.Message(), sig) {
		return errors.New("retention anchor: signature does not match its fields")
	}
	return nil
}

// AddAnchors adds retention anchors (read from a store) that the evidence does not hold yet and
// returns how many were new. Their signatures are checked by Verify.
func (ev *Evidence) AddAnchors(as ...Anchor) int {
	key := func(a Anchor) string {
		return fmt.Sprintf("%s\x00%d\x00%s\x00%s", a.ChainID, a.Sequence, a.Hash, a.Signature)
	}
	have := map[string]bool{}
	for _, a := range ev.Anchors {
		have[key(a)] = true
	}
	n := 0
	for _, a := range as {
		if k := key(a); !have[k] {
			have[k] = true
			ev.Anchors = append(ev.Anchors, a)
			n++
		}
	}
	return n
}

// NewestAnchor returns the newest retention anchor of chainID with a valid signature by one of
// the evidence's keys (nil: none), and a problem when an anchor of the chain does not verify: a
// store holding an anchor nobody with the key signed was edited, and that anchor is not used.
func (ev *Evidence) NewestAnchor(chainID string) (*Anchor, *chain.Problem) {
	if ev == nil {
		return nil, nil
	}
	byID := map[string]ed25519.PublicKey{}
	for _, k := range ev.Keys {
		byID[KeyID(k)] = k
	}
	var newest *Anchor
	var prob *chain.Problem
	for _, a := range ev.Anchors {
		if a.ChainID != chainID {
			continue
		}
		err := errors.New("retention anchor: no verification key given")
		if pub, ok := byID[a.KeyID]; ok {
			err = a.Verify(pub)
		} else if len(ev.Keys) > 0 {
			err = fmt.Errorf("retention anchor: signed by key %s, which is not among the given keys", a.KeyID)
		}
		if err != nil {
			if prob == nil {
				prob = &chain.Problem{ChainID: chainID, Sequence: a.Sequence, Reason: chain.ReasonRetentionAnchor,
					Detail: fmt.Sprintf("the store holds a retention anchor at sequence %d that does not verify (%v): it is ignored, and the chain is checked from its genesis", a.Sequence, err)}
			}
			continue
		}
		if newest == nil || a.Sequence > newest.Sequence {
			c := a
			newest = &c
		}
	}
	return newest, prob
}

// startAnchor returns the retention anchor a verification starting at from uses: the newest valid
// anchor of the chain when the start lies inside (or just after) the removed range and the range
// asked for ends after it. The problem reports an anchor of the chain that does not verify.
func startAnchor(req Request, from uint64) (*Anchor, *chain.Problem) {
	a, prob := req.Evidence.NewestAnchor(req.ChainID)
	if a == nil || a.Sequence+1 < from || (req.To != 0 && req.To <= a.Sequence) {
		return nil, prob
	}
	return a, prob
}

// StartsAfterAnchor reports whether a verification of chainID from sequence from would start from
// a retention anchor instead (the evidence holds a valid anchor at or after from-1). Callers that
// pick a start themselves (a bounded window before the event asked about) use it to avoid
// looking up a removed event.
func (ev *Evidence) StartsAfterAnchor(chainID string, from uint64) bool {
	a, _ := ev.NewestAnchor(chainID)
	return a != nil && a.Sequence+1 >= from
}
