package jsonb_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

// This file compares the package with a real PostgreSQL.
//
// TestPostgresObserved replays testdata/pg15-observed.json, results recorded from
// PostgreSQL 15.18 (server encoding UTF8): hand-written edge cases plus seeded random
// documents and mutations of them.
//
// TestPostgresLive does the same against a live server when FLOWKER_AUDIT_TEST_PSQL holds a
// psql connection string (for example "host=/tmp/pg port=5432 user=postgres"), with more
// random documents; with -update-pg it rewrites testdata/pg15-observed.json from the server.

const psqlEnv = "FLOWKER_AUDIT_TEST_PSQL"

var updatePG = flag.Bool("update-pg", false, "rewrite testdata/pg15-observed.json from the server named by "+psqlEnv)

const observedFile = "pg15-observed.json"

type pgResult struct {
	Input     string `json:"input,omitempty"`
	InputHex  string `json:"input_hex,omitempty"` // for inputs that are not valid UTF-8
	Canonical string `json:"canonical,omitempty"`
	SQLState  string `json:"sqlstate,omitempty"` // set when PostgreSQL rejected the input
	Detail    string `json:"detail,omitempty"`
}

func (r pgResult) input() []byte {
	if r.InputHex != "" {
		b, err := hex.DecodeString(r.InputHex)
		if err != nil {
			panic(err)
		}
		return b
	}
	return []byte(r.Input)
}

// sentinelFor maps a PostgreSQL error to the sentinel this package must return.
func sentinelFor(sqlstate, detail string) error {
	switch sqlstate {
	case "22P05":
		return jsonb.ErrUnsupportedEscape
	case "22P02":
		if strings.Contains(detail, "surrogate") {
			return jsonb.ErrLoneSurrogate
		}
		return jsonb.ErrSyntax
	case "22021":
		return jsonb.ErrInvalidUTF8
	case "22003":
		return jsonb.ErrNumberOverflow
	case "54001":
		return jsonb.ErrTooDeep
	}
	return fmt.Errorf("unexpected SQLSTATE %s", sqlstate)
}

func checkAgainstPG(t *testing.T, results []pgResult) {
	t.Helper()
	var ok, rejected int
	for i, r := range results {
		in := r.input()
		got, err := jsonb.Canonical(in)
		if r.SQLState == "" {
			ok++
			if err != nil {
				t.Errorf("#%d %.120q: PostgreSQL accepts it, got error %v", i, in, err)
			} else if string(got) != r.Canonical {
				t.Errorf("#%d %.120q:\n got %.300q\n  pg %.300q", i, in, got, r.Canonical)
			}
			continue
		}
		rejected++
		if want := sentinelFor(r.SQLState, r.Detail); !errors.Is(err, want) {
			t.Errorf("#%d %.120q: PostgreSQL rejects it (%s %s), want %v, got (%.80q, %v)", i, in, r.SQLState, r.Detail, want, got, err)
		}
	}
	t.Logf("%d inputs PostgreSQL accepted, %d it rejected", ok, rejected)
	if ok == 0 || rejected == 0 {
		t.Fatal("corpus lacks accepted or rejected inputs")
	}
}

func TestPostgresObserved(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", observedFile))
	if err != nil {
		t.Fatal(err)
	}
	var results []pgResult
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	checkAgainstPG(t, results)
}

func TestPostgresLive(t *testing.T) {
	conn := os.Getenv(psqlEnv)
	if conn == "" {
		t.Skip(psqlEnv + " is not set; skipping the comparison with a live PostgreSQL")
	}
	inputs := pgCorpus(250)
	if !*updatePG {
		inputs = append(inputs, randomCorpus(rand.New(rand.NewPCG(uint64(os.Getpid()), 99)), 3000)...)
		// Inputs too large for the recorded file.
		inputs = append(inputs, []byte("1e131071"), []byte(strings.Repeat("9", 131072)), []byte(strings.Repeat("9", 131073)),
			[]byte("0."+strings.Repeat("7", 16383)), []byte("0."+strings.Repeat("7", 16384)),
			[]byte(strings.Repeat("[", jsonb.MaxDepth)+strings.Repeat("]", jsonb.MaxDepth)))
	}
	results, err := runPSQL(conn, inputs)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstPG(t, results)
	if *updatePG {
		// Keep the recorded file small: leave out huge renderings (e.g. of 1e131071).
		kept := results[:0:0]
		for _, r := range results {
			if len(r.Canonical) <= 4096 {
				kept = append(kept, r)
			}
		}
		b, err := json.MarshalIndent(kept, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", observedFile), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pgCorpus is the recorded corpus: the table cases that are small enough, plus n seeded
// random documents and n mutations.
func pgCorpus(n int) [][]byte {
	var out [][]byte
	for _, tc := range append(append([]canonCase{}, observedCases...), edgeCases...) {
		if len(tc.in) <= 4096 && len(tc.in) > 0 && !strings.ContainsRune(tc.in, 0) {
			out = append(out, []byte(tc.in))
		}
	}
	return append(out, randomCorpus(rand.New(rand.NewPCG(7, 2026)), n)...)
}

// runPSQL renders every input with PostgreSQL's jsonb::text. Inputs containing a NUL byte
// cannot be sent as text at all and are left out.
func runPSQL(conn string, inputs [][]byte) ([]pgResult, error) {
	var script bytes.Buffer
	script.WriteString(`create temp table t(i int, h text);
create function pg_temp.canon(h text) returns text language plpgsql as $$
declare d text;
begin
  return 'ok ' || encode(convert_to(convert_from(decode(h, 'hex'), 'UTF8')::jsonb::text, 'UTF8'), 'hex');
exception when others then
  get stacked diagnostics d = pg_exception_detail;
  return 'err ' || sqlstate || ' ' || coalesce(replace(d, E'\n', ' '), '');
end $$;
copy t from stdin;
`)
	var sent [][]byte
	for _, in := range inputs {
		if bytes.IndexByte(in, 0) >= 0 {
			continue
		}
		fmt.Fprintf(&script, "%d\t%x\n", len(sent), in)
		sent = append(sent, in)
	}
	script.WriteString("\\.\nselect i, pg_temp.canon(h) from t order by i;\n")
	cmd := exec.Command("psql", conn, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\t")
	cmd.Stdin = &script
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("running psql: %w: %s", err, stderr.Bytes())
	}
	results := make([]pgResult, 0, len(sent))
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		idx, rest, ok := strings.Cut(sc.Text(), "\t")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i != len(results) {
			return nil, fmt.Errorf("unexpected psql output line %.100q", sc.Text())
		}
		in := sent[i]
		r := pgResult{}
		if utf8.Valid(in) {
			r.Input = string(in)
		} else {
			r.InputHex = hex.EncodeToString(in)
		}
		switch {
		case strings.HasPrefix(rest, "ok "):
			b, err := hex.DecodeString(rest[3:])
			if err != nil {
				return nil, err
			}
			r.Canonical = string(b)
		case strings.HasPrefix(rest, "err "):
			r.SQLState, r.Detail, _ = strings.Cut(rest[4:], " ")
		default:
			return nil, fmt.Errorf("unexpected psql output line %.100q", sc.Text())
		}
		results = append(results, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(results) != len(sent) {
		return nil, fmt.Errorf("psql returned %d results for %d inputs", len(results), len(sent))
	}
	return results, nil
}

// randomCorpus returns n random JSON documents biased towards the cases that matter (key
// order, duplicates, escapes, number forms) and n random mutations of them.
func randomCorpus(r *rand.Rand, n int) [][]byte {
	g := &docGen{r: r}
	docs := make([][]byte, 0, 2*n)
	for range n {
		g.buf = g.buf[:0]
		g.value(0)
		docs = append(docs, append([]byte(nil), g.buf...))
	}
	for i := range n {
		docs = append(docs, mutate(r, docs[i]))
	}
	return docs
}

type docGen struct {
	r   *rand.Rand
	buf []byte
}

func (g *docGen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *docGen) ws() {
	if g.r.IntN(4) == 0 {
		g.buf = append(g.buf, g.pick([]string{" ", "\n", "\t", "\r\n", "  "})...)
	}
}

var genKeys = []string{
	"a", "b", "c", "aa", "ab", "ba", "", "é", "€", "😀", "ß", "Z", "_", "0", "A", "zz", "zzz",
	`k\\y`, `\u0061`, `\n`, `q\"t`, `\/`, `a\u00e9`, "id", "name", "workflow.name", `\u20ac`,
}

var genStrings = []string{
	"x", "hello world", "é", "€", "😀", "\u2028", "\x7f", "<>&'", "/", `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
	`\u0001`, `\u001f`, `\u001F`, `\u000b`, `\u007f`, `\u00e9`, `\u00E9`, `\u2028`, `\ud83d\ude00`, `\uD83D\uDE00`,
	`\u0020`, `\u0022`, `\u005c`, `\u002f`, "C:\\\\temp", "a|b",
}

func (g *docGen) str(pieces []string, maxN int) {
	g.buf = append(g.buf, '"')
	for range g.r.IntN(maxN + 1) {
		g.buf = append(g.buf, g.pick(pieces)...)
	}
	if g.r.IntN(60) == 0 {
		g.buf = append(g.buf, g.pick([]string{`\u0000`, `\ud83d`, `\ude00`, `\ud83dx`})...)
	}
	g.buf = append(g.buf, '"')
}

func (g *docGen) digits(n int, first bool) {
	for i := range n {
		d := byte('0' + g.r.IntN(10))
		if i == 0 && first && d == '0' {
			d = '1'
		}
		g.buf = append(g.buf, d)
	}
}

func (g *docGen) number() {
	if g.r.IntN(3) == 0 {
		g.buf = append(g.buf, '-')
	}
	if g.r.IntN(3) == 0 {
		g.buf = append(g.buf, '0')
	} else {
		g.digits(1+g.r.IntN(25), true)
	}
	if g.r.IntN(2) == 0 {
		g.buf = append(g.buf, '.')
		g.digits(1+g.r.IntN(12), false)
		if g.r.IntN(3) == 0 {
			g.buf = append(g.buf, "000"[:1+g.r.IntN(3)]...)
		}
	}
	if g.r.IntN(2) == 0 {
		g.buf = append(g.buf, g.pick([]string{"e", "E", "e+", "e-", "E-", "e0", "e-0"})...)
		switch g.r.IntN(6) {
		case 0:
			g.buf = strconv.AppendInt(g.buf, int64(g.r.IntN(400)), 10)
		default:
			g.buf = strconv.AppendInt(g.buf, int64(g.r.IntN(30)), 10)
		}
	}
}

func (g *docGen) value(depth int) {
	g.ws()
	k := g.r.IntN(10)
	if depth >= 5 {
		k = 4 + g.r.IntN(6)
	}
	switch k {
	case 0, 1, 2:
		g.buf = append(g.buf, '{')
		for i := range g.r.IntN(8) {
			if i > 0 {
				g.buf = append(g.buf, ',')
			}
			g.ws()
			g.str(genKeys, 2)
			g.ws()
			g.buf = append(g.buf, ':')
			g.value(depth + 1)
		}
		g.ws()
		g.buf = append(g.buf, '}')
	case 3:
		g.buf = append(g.buf, '[')
		for i := range g.r.IntN(5) {
			if i > 0 {
				g.buf = append(g.buf, ',')
			}
			g.value(depth + 1)
		}
		g.ws()
		g.buf = append(g.buf, ']')
	case 4, 5:
		g.str(genStrings, 4)
	case 6, 7:
		g.number()
	default:
		g.buf = append(g.buf, g.pick([]string{"true", "false", "null"})...)
	}
	g.ws()
}

func mutate(r *rand.Rand, doc []byte) []byte {
	out := append([]byte(nil), doc...)
	for range 1 + r.IntN(2) {
		if len(out) == 0 {
			break
		}
		i := r.IntN(len(out))
		switch r.IntN(3) {
		case 0:
			out = append(out[:i], out[i+1:]...)
		case 1:
			ins := []string{`"`, `\`, ",", ":", "{", "}", "[", "]", "0", "e", "-", ".", "\xff", "\x01", " ", "u", "\xc3"}
			c := ins[r.IntN(len(ins))]
			out = append(out[:i], append([]byte(c), out[i:]...)...)
		default:
			j := i + r.IntN(len(out)-i)
			out = append(out[:j], append(append([]byte(nil), out[i:j]...), out[j:]...)...)
		}
	}
	return out
}
