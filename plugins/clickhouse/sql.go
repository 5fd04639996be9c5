package clickhouse

import (
	"strconv"
	"strings"
)

// The plugin renders every value into the SQL text itself, the way clickhouse-go binds `?`
// arguments on the client side (server-side parameters do not exist on 18.16). Only three kinds of
// values are ever rendered: int64, uint64 and strings, so the statement that runs is exactly the
// text that the modern-engine check (chdb) runs too.

// stringQuoter escapes a string for a single-quoted ClickHouse literal: backslash, quote and NUL,
// the same set clickhouse-go escapes. Every other byte, including invalid UTF-8, stands for itself.
var stringQuoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`)

// quoteString renders s as a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + stringQuoter.Replace(s) + "'"
}

func i64(v int64) string  { return strconv.FormatInt(v, 10) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// where accumulates AND-ed conditions.
type where []string

func (w *where) add(cond string) { *w = append(*w, cond) }

func (w where) String() string {
	if len(w) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w, " AND ")
}
