package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// AppendCanonicalInput appends the 13-field hash input of e to dst. Context and Metadata must
// already be canonical jsonb text; empty ones are rendered as "{}", like Flowker's column default.
func (e *Event) AppendCanonicalInput(dst []byte) []byte {
	if e.PreviousHash == "" {
		dst = append(dst, Genesis...)
	} else {
		dst = append(dst, e.PreviousHash...)
	}
	for _, f := range [...]string{e.EventID, e.EventType, e.Action, e.Result, e.ResourceID, e.ResourceType,
		e.Actor.Type, e.Actor.ID, e.Actor.IPAddress} {
		dst = append(dst, '|')
		dst = append(dst, f...)
	}
	dst = append(dst, '|')
	dst = appendJSONField(dst, e.Context)
	dst = append(dst, '|')
	dst = appendJSONField(dst, e.Metadata)
	dst = append(dst, '|')
	return e.Timestamp.UTC().AppendFormat(dst, TimestampLayout)
}

func appendJSONField(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, "{}"...)
	}
	return append(dst, v...)
}

// ComputeHash returns the lowercase hex SHA-256 of e's canonical input.
func (e *Event) ComputeHash() string {
	var buf [2048]byte
	sum := sha256.Sum256(e.AppendCanonicalInput(buf[:0]))
	return hex.EncodeToString(sum[:])
}

// Seal sets e.Hash from the other fields.
func (e *Event) Seal() { e.Hash = e.ComputeHash() }

// ErrByteaSyntax reports an input that PostgreSQL's text::bytea cast rejects; Flowker loses such
// events (its INSERT fails).
var ErrByteaSyntax = errors.New("invalid input syntax for type bytea")

// FlowkerHash returns the hash Flowker's own trigger computes for e: SHA-256 over input::bytea,
// that is after PostgreSQL's bytea escape decoding (\\ -> \, \ooo -> one byte). It fails with
// ErrByteaSyntax exactly where Flowker's INSERT fails. Use it to check rows written by Flowker;
// the sidecar's own chain uses ComputeHash.
func (e *Event) FlowkerHash() (string, error) {
	decoded, err := ByteaDecode(e.AppendCanonicalInput(nil))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(decoded)
	return hex.EncodeToString(sum[:]), nil
}

// ByteaDecode applies PostgreSQL's bytea escape input format to s.
func ByteaDecode(s []byte) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]):
			v, _ := strconv.ParseUint(string(s[i+1:i+4]), 8, 8)
			out = append(out, byte(v))
			i += 3
		default:
			return nil, fmt.Errorf("%w at byte %d", ErrByteaSyntax, i)
		}
	}
	return out, nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
