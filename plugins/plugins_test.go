package plugins

import (
	"slices"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/config"
)

// Configuration checks see the bundled plugins with their problems keyed by path.
func TestCatalogFeedsConfigChecks(t *testing.T) {
	yaml := "version: 1\nsinks:\n  - name: store\n    plugin: sqlite\n    query: true\n    config: {path: /tmp/x.db, cache_size_mib: 0, bogus: 1}\n  - name: other\n    plugin: nosuch\n"
	_, err := config.Parse([]byte(yaml), config.Options{Plugins: Catalog{}})
	es, ok := config.IsErrors(err)
	if !ok {
		t.Fatalf("want configuration errors, got %v", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	for _, want := range []string{
		"sinks[0].config.bogus: unknown key (known: busy_timeout, cache_size_mib, path, synchronous)",
		"sinks[0].config.cache_size_mib: must be between 1 and 65536, got 0",
		`sinks[1].plugin: unknown bundled plugin "nosuch" (bundled: ` + strings.Join(Names(), ", ") + `)`,
	} {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, want) }) {
			t.Errorf("missing %q in\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, name := range Names() {
		if !IsBundled(name) {
			t.Errorf("IsBundled(%q) = false", name)
		}
	}
	for name, want := range map[string]bool{"sqlite": true, "clickhouse": true, "file": false, "syslog": false} {
		if got := (Catalog{}).Queryable(name); got != want {
			t.Errorf("Queryable(%q) = %v, want %v", name, got, want)
		}
	}
	if IsBundled("./plugins/mysink") {
		t.Error("a path is not bundled")
	}
}

func TestValidateConfig(t *testing.T) {
	for _, name := range Names() {
		if known, err := ValidateConfig(name, []byte(`{"no_such_key": 1}`)); !known || err == nil {
			t.Errorf("%s: unknown key accepted (known=%v err=%v)", name, known, err)
		}
	}
	if known, _ := ValidateConfig("/usr/local/bin/mysink", []byte(`{}`)); known {
		t.Error("an external plugin path must not be validated in-process")
	}
}
