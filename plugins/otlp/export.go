package otlp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/flowker-audit/flowker-audit/sink"
)

// outcome is what the receiver answered to the last export request, recorded underneath the
// exporter (a gRPC interceptor, an HTTP round tripper) so errors are classified on the
// protocol's own terms rather than on the exporter's error texts.
type outcome struct {
	answered atomic.Bool  // a response (or a gRPC status from the server) arrived
	grpcCode atomic.Int32 // gRPC status code
	httpCode atomic.Int32 // HTTP status code
}

func (o *outcome) reset() {
	o.answered.Store(false)
	o.grpcCode.Store(0)
	o.httpCode.Store(0)
}

// newExporter returns the official OTLP log exporter for cfg, with its own retries off: the
// host retries, with backoff, what classify says is retryable.
func newExporter(ctx context.Context, cfg *Config, tlsCfg *tls.Config, o *outcome) (sdklog.Exporter, error) {
	timeout := time.Duration(cfg.Timeout)
	if cfg.Protocol == ProtocolHTTP {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		tr.MaxIdleConnsPerHost = 4
		opts := []otlploghttp.Option{
			otlploghttp.WithEndpointURL(cfg.url.String()),
			otlploghttp.WithHeaders(cfg.headers),
			otlploghttp.WithTimeout(timeout),
			otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}),
			otlploghttp.WithHTTPClient(&http.Client{Transport: &recordingTransport{next: tr, o: o}}),
		}
		if cfg.Compression == "gzip" {
			opts = append(opts, otlploghttp.WithCompression(otlploghttp.GzipCompression))
		}
		e, err := otlploghttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp/http exporter: %w", err)
		}
		return e, nil
	}
	opts := []otlploggrpc.Option{
		otlploggrpc.WithEndpointURL(cfg.url.String()),
		otlploggrpc.WithHeaders(cfg.headers),
		otlploggrpc.WithTimeout(timeout),
		otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false}),
		// Reconnect with exponential backoff capped at 5 s (gRPC's default cap is 120 s), so
		// that delivery resumes soon after the receiver comes back.
		otlploggrpc.WithDialOption(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})),
		otlploggrpc.WithDialOption(grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
			cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
			err := invoker(ctx, method, req, reply, cc, callOpts...)
			if st, ok := status.FromError(err); ok && (err == nil || fromServer(st.Code())) {
				o.grpcCode.Store(int32(st.Code()))
				o.answered.Store(true)
			}
			return err
		})),
	}
	if cfg.url.Scheme == "https" {
		opts = append(opts, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
	}
	if cfg.Compression == "gzip" {
		opts = append(opts, otlploggrpc.WithCompressor("gzip"))
	}
	e, err := otlploggrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp/grpc exporter: %w", err)
	}
	return e, nil
}

// fromServer reports whether a gRPC code can only have come from the server (and not from the
// client failing to reach it, which gRPC reports as Unavailable or DeadlineExceeded).
func fromServer(c codes.Code) bool {
	return c != codes.Unavailable && c != codes.DeadlineExceeded && c != codes.Canceled
}

// recordingTransport records the HTTP status of every response.
type recordingTransport struct {
	next http.RoundTripper
	o    *outcome
}

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		t.o.httpCode.Store(int32(resp.StatusCode))
		t.o.answered.Store(true)
	}
	return resp, err
}

// classify turns an export error into a retryable or a permanent one for the host, following
// the OTLP specification (https://opentelemetry.io/docs/specs/otlp/#failures):
//   - no answer (connection refused, reset, timed out): retryable;
//   - gRPC: Canceled, DeadlineExceeded, Aborted, OutOfRange, Unavailable, DataLoss and
//     ResourceExhausted retryable (the spec retries the last only with RetryInfo; an audit sink
//     would rather wait than fail), everything else permanent;
//   - HTTP: 429, 502, 503, 504 retryable, every other status permanent;
//   - an accepted request with rejected records (partial success): permanent — the receiver
//     said it will not take those records, so the sink is marked failed for an operator
//     rather than acknowledging records the SIEM dropped.
func classify(err error, o *outcome) error {
	if err == nil {
		return nil
	}
	if !o.answered.Load() {
		return err
	}
	if hc := o.httpCode.Load(); hc != 0 {
		switch {
		case hc >= 200 && hc <= 299:
			return sink.Permanent(fmt.Errorf("the receiver rejected records (partial success): %w", err))
		case hc == http.StatusTooManyRequests, hc == http.StatusBadGateway, hc == http.StatusServiceUnavailable, hc == http.StatusGatewayTimeout:
			return err
		}
		return sink.Permanent(err)
	}
	switch codes.Code(o.grpcCode.Load()) {
	case codes.OK:
		return sink.Permanent(fmt.Errorf("the receiver rejected records (partial success): %w", err))
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable,
		codes.DataLoss, codes.ResourceExhausted:
		return err
	}
	return sink.Permanent(err)
}
