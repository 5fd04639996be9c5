// Package damagetest damages files the way a disk or an editor can, for tests of what the sidecar
// does with them.
package damagetest

import "bytes"

// FlipAll flips one bit (0x20, the case of an ASCII letter) in the fourth byte of every
// occurrence of needle in b and returns how many it changed.
func FlipAll(b, needle []byte) int {
	n := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], needle)
		if i < 0 {
			return n
		}
		b[off+i+3] ^= 0x20
		off += i + len(needle)
		n++
	}
}
