package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors returned by Open when a plugin must not be started or spoken to.
var (
	// ErrProtocolVersion means the plugin speaks a different version of the sink protocol.
	ErrProtocolVersion = errors.New("incompatible sink plugin protocol version")
	// ErrChecksumMismatch means the plugin binary's SHA-256 differs from the configured pin.
	ErrChecksumMismatch = errors.New("sink plugin checksum mismatch")
)

// toStatus turns an error returned by a Sink implementation into a gRPC status error whose code
// tells the host how to treat it (see sink.proto).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var code codes.Code
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, ErrConflict):
		code = codes.Aborted
	case IsPermanent(err):
		code = codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	default:
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}

// remoteError is an error that came back from a plugin call. Its text is the plugin's message;
// it wraps the sentinel (ErrNotFound, ErrUnsupported, ErrConflict, a context error) the status code stands for.
type remoteError struct {
	op  string
	msg string
	err error
}

func (e *remoteError) Error() string { return "sink plugin " + e.op + ": " + e.msg }
func (e *remoteError) Unwrap() error { return e.err }

// fromStatus turns the error of a gRPC call to a plugin back into the error the plugin returned:
// ErrNotFound and ErrUnsupported keep their identity, permanent errors are Permanent again, and
// deadlines and cancellation of ctx come back as ctx's error.
//
// A call whose deadline passed can come back as Canceled before ctx's own timer has fired: the
// plugin's gRPC server runs the same deadline, and when it expires there first, it resets the
// stream with CANCEL. ctxErr reads such a call as having run out of time.
func fromStatus(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("sink plugin %s: %w", op, err)
	}
	re := &remoteError{op: op, msg: st.Message()}
	switch st.Code() {
	case codes.NotFound:
		re.err = ErrNotFound
		return re
	case codes.Unimplemented:
		re.err = ErrUnsupported
		return Permanent(re)
	case codes.Aborted:
		re.err = ErrConflict
		return Permanent(re)
	case codes.FailedPrecondition, codes.InvalidArgument, codes.PermissionDenied,
		codes.Unauthenticated, codes.OutOfRange, codes.AlreadyExists, codes.DataLoss:
		return Permanent(re)
	case codes.DeadlineExceeded:
		re.err = context.DeadlineExceeded
		return re
	case codes.Canceled:
		re.err = context.Canceled
		if err := ctxErr(ctx); err != nil {
			re.err = err
		}
		return re
	default:
		return re
	}
}

// ctxErr is ctx.Err(), except that a ctx whose deadline has passed is DeadlineExceeded even
// before its timer has fired.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// DeadlinePassed reports whether ctx ended, or is about to end, because its deadline passed.
func DeadlinePassed(ctx context.Context) bool {
	return errors.Is(ctxErr(ctx), context.DeadlineExceeded)
}
