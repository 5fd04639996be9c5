package syslog

import (
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain"
)

func TestAppendMessage(t *testing.T) {
	f := formatter{facility: 16, hostname: "host", appName: "flowker-audit", procID: "42", sdID: DefaultSDID}
	e := chain.Event{EventID: "e1", EventType: "WORKFLOW_CREATED", Action: "CREATE", Result: "FAILED",
		ResourceID: `a"b]c\d`, ResourceType: "workflow", Actor: chain.Actor{Type: "user", ID: "alice"},
		Context: []byte(`{}`), Metadata: []byte(`{}`), Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
		Hash: "h1", ChainID: "c", Sequence: 7}
	got := string(f.appendMessage(nil, &e))
	want := `<132>1 2026-01-02T03:04:05.123456Z host flowker-audit 42 WORKFLOW_CREATED [flowkerAudit@32473 eventId="e1" eventType="WORKFLOW_CREATED" action="CREATE" result="FAILED" actorType="user" actorId="alice" resourceType="workflow" resourceId="a\"b\]c\\d" chainId="c" sequence="7" hash="h1"] ` + string(e.AppendJSON(nil))
	if got != want {
		t.Fatalf("message\n got %s\nwant %s", got, want)
	}
	framed, _ := appendFrame(nil, &f, &e, nil)
	if wantFrame := strconv.Itoa(len(want)) + " " + want; string(framed) != wantFrame {
		t.Fatalf("frame\n got %s\nwant %s", framed, wantFrame)
	}
	e.EventType = "a type with spaces"
	if got := string(f.appendMessage(nil, &e)); !strings.Contains(got, " 42 - [") {
		t.Fatalf("an event type that is no MSGID must become '-': %s", got)
	}
}

// unescapeParam reverses appendParam's escaping (RFC 5424 section 6.3.3).
func unescapeParam(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && strings.IndexByte(`"\]`, s[i+1]) >= 0:
			b.WriteByte(s[i+1])
			i++
		case c == '"' || c == ']':
			return "", false // must have been escaped
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// FuzzAppendParam: a structured-data value always round-trips (valid UTF-8 in, the same text
// out) and never ends the parameter or the element early.
func FuzzAppendParam(f *testing.F) {
	for _, s := range []string{"", `plain`, `a"b`, `back\slash`, `close]`, `\"]`, "ünïcødé", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		out := string(appendParam(nil, "k", v))
		body, ok := strings.CutPrefix(out, ` k="`)
		if !ok || !strings.HasSuffix(body, `"`) {
			t.Fatalf("malformed param %q", out)
		}
		got, ok := unescapeParam(strings.TrimSuffix(body, `"`))
		if !ok {
			t.Fatalf("unescaped delimiter in %q", out)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("not UTF-8: %q", got)
		}
		if utf8.ValidString(v) && got != v {
			t.Fatalf("round trip %q -> %q -> %q", v, out, got)
		}
	})
}
