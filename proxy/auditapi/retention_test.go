package auditapi

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

type retainedStore struct {
	*auditapitest.Store
	anchors []sink.RetentionAnchor
}

func (s *retainedStore) ReadAnchors(context.Context, string) ([]sink.RetentionAnchor, error) {
	return s.anchors, nil
}

// TestVerifyAfterRetention: /verify starts from the signed retention anchor and says so, also when
// the bounded window (MaxVerify) would start inside the removed range; a forged anchor claiming
// more than retention removed does not hide the removal, and nothing calls retention truncation.
func TestVerifyAfterRetention(t *testing.T) {
	evs := sinktest.GenerateChain("chain-r", 100, sinktest.GenOptions{Seed: 8})
	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	an, err := signer.SignAnchor("chain-r", 40, evs[39].Hash, evs[40].Timestamp, evs[99].Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	forged := sink.RetentionAnchor(an)
	forged.Sequence, forged.Hash = 60, evs[59].Hash
	cp, err := signer.Sign("chain-r", 90, evs[89].Hash, evs[89].Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	evidence := func(o *Options) {
		o.Checkpoints = func(string) (*checkpoint.Evidence, error) {
			return &checkpoint.Evidence{Checkpoints: []checkpoint.Checkpoint{cp}, Keys: []ed25519.PublicKey{signer.Public()}}, nil
		}
		o.MaxVerify = 70 // the window 31..100 starts inside the removed range
	}
	tests := []struct {
		name      string
		kept      []chain.Event
		anchors   []sink.RetentionAnchor
		valid     bool
		from      uint64
		anchorSeq uint64
	}{
		{"after retention", evs[40:], []sink.RetentionAnchor{sink.RetentionAnchor(an)}, true, 41, 40},
		{"removed without an anchor", evs[40:], nil, false, 31, 0},
		{"forged anchor hiding more", evs[60:], []sink.RetentionAnchor{forged}, false, 31, 0},
		{"valid anchor, more removed", evs[60:], []sink.RetentionAnchor{sink.RetentionAnchor(an)}, false, 41, 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestAPI(t, &retainedStore{Store: auditapitest.NewStore(tc.kept...), anchors: tc.anchors}, evidence)
			v, _ := decodeVerify(t, env.get(t, "/v1/audit-events/"+evs[99].EventID+"/verify"))
			if v.IsValid != tc.valid {
				t.Fatalf("isValid = %v, want %v: %+v", v.IsValid, tc.valid, v)
			}
			if tc.valid && (v.VerifiedFrom != tc.from || v.TotalChecked != 60) {
				t.Errorf("verifiedFrom %d, totalChecked %d; want %d, 60", v.VerifiedFrom, v.TotalChecked, tc.from)
			}
			switch {
			case tc.anchorSeq == 0 && v.RetentionAnchor != nil:
				t.Errorf("retentionAnchor = %+v, want none", v.RetentionAnchor)
			case tc.anchorSeq != 0 && (v.RetentionAnchor == nil || v.RetentionAnchor.Sequence != tc.anchorSeq):
				t.Errorf("retentionAnchor = %+v, want sequence %d", v.RetentionAnchor, tc.anchorSeq)
			}
			if tc.valid && !strings.Contains(v.Coverage, "retention anchor of sequence 40") {
				t.Errorf("coverage does not say where it started: %s", v.Coverage)
			}
			if strings.Contains(strings.ToLower(v.Message+v.Coverage+v.Reason), "truncat") {
				t.Errorf("retention called truncation: %+v", v)
			}
		})
	}
}
