package sink

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// lateContext is a context whose deadline has passed but whose timer has not fired yet: the
// moment in which a plugin's server can already have reset the stream.
type lateContext struct{ context.Context }

func (lateContext) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestFromStatusReadsContextErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	late := lateContext{context.Background()}
	tests := []struct {
		name string
		ctx  context.Context
		code codes.Code
		want error
	}{
		{"a plugin's own deadline", context.Background(), codes.DeadlineExceeded, context.DeadlineExceeded},
		{"a plugin's own cancellation", context.Background(), codes.Canceled, context.Canceled},
		{"the caller cancelled", cancelled, codes.Canceled, context.Canceled},
		{"the server reset the stream at the deadline before the caller's timer fired", late, codes.Canceled, context.DeadlineExceeded},
		{"unavailable after the deadline stays unavailable", late, codes.Unavailable, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := fromStatus(tc.ctx, "write", status.Error(tc.code, "stream terminated"))
			if tc.want == nil {
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
					t.Fatalf("fromStatus = %v, want neither a deadline nor a cancellation", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("fromStatus = %v, want it to wrap %v", err, tc.want)
			}
		})
	}
	if !DeadlinePassed(late) || DeadlinePassed(context.Background()) || DeadlinePassed(cancelled) {
		t.Error("DeadlinePassed: want true only for a context past its deadline")
	}
}
