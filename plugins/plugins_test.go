package plugins

import (
	"slices"
	"testing"

	"github.com/flowker-audit/flowker-audit/config"
)

func TestBundledListsAgree(t *testing.T) {
	got := Names()
	want := slices.Clone(config.BundledPlugins)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("plugins.Names() = %v, config.BundledPlugins = %v", got, want)
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
