package damagetest

import "testing"

func TestFlipAll(t *testing.T) {
	b := []byte("xx-abcdef-yy-abcdef-abc")
	if n := FlipAll(b, []byte("abcdef")); n != 2 || string(b) != "xx-abcDef-yy-abcDef-abc" {
		t.Fatalf("%d %q", n, b)
	}
	if n := FlipAll(b, []byte("zzzz")); n != 0 {
		t.Fatal(n)
	}
}
