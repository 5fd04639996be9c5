package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain/jsonb"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

// FuzzUsersAgree cross-checks the tokenizer's two users on the same input: what chain/jsonb
// canonicalises, proxy/capture renders whole and valid, to the same value (when nothing was
// redacted); what encoding/json accepts, capture does not call invalid; and what capture
// renders from a complete body is JSON that jsonb reads unless the input had something
// PostgreSQL refuses.
func FuzzUsersAgree(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.50,-0,1e3],"b":"\u00e9\ud83d\ude00","c":{"d":null,"e":true}}`, `"\u0000"`,
		`{"password":"hunter2","x":1}`, `[01]`, `{"a" "b"}`, "\"\xff\"", `"\ud800"`, `[1,`} {
		f.Add([]byte(s))
	}
	r, err := capture.NewRedactor(nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		canon, cerr := jsonb.Canonical(in)
		rend, rerr := r.Render(in, true, len(in)+64)
		valid := json.Valid(in)
		if valid && (rerr != nil || rend.Invalid || rend.Truncated) {
			t.Fatalf("encoding/json accepts %q; capture renders %+v, %v", in, rend, rerr)
		}
		if cerr != nil {
			return
		}
		if rerr != nil || rend.Invalid || rend.Truncated {
			t.Fatalf("jsonb canonicalises %q; capture renders %+v, %v", in, rend, rerr)
		}
		if rend.Redacted {
			return // a secret-shaped value was hidden: the values differ on purpose
		}
		again, err := jsonb.Canonical(rend.JSON)
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("%q: jsonb gives %q; of capture's rendering %q it gives %q, %v", in, canon, rend.JSON, again, err)
		}
	})
}
