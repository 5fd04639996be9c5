package otlp

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	collogpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// answer is what a fake receiver answers to the next export.
type answer struct {
	httpStatus int        // HTTP
	code       codes.Code // gRPC
	rejected   int64      // partial success: records rejected
}

type fakeReceiver struct {
	collogpb.UnimplementedLogsServiceServer
	mu      sync.Mutex
	answer  answer
	headers []string // the x-tenant and authorization values seen
	records int
}

func (f *fakeReceiver) set(a answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

func (f *fakeReceiver) Export(ctx context.Context, req *collogpb.ExportLogsServiceRequest) (*collogpb.ExportLogsServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ctx)
	f.headers = append(f.headers, strings.Join(md.Get("x-tenant"), ",")+"|"+strings.Join(md.Get("authorization"), ","))
	return f.reply(req)
}

func (f *fakeReceiver) reply(req *collogpb.ExportLogsServiceRequest) (*collogpb.ExportLogsServiceResponse, error) {
	if f.answer.code != codes.OK {
		return nil, status.Error(f.answer.code, "told to fail")
	}
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			f.records += len(sl.LogRecords)
		}
	}
	resp := &collogpb.ExportLogsServiceResponse{}
	if f.answer.rejected > 0 {
		resp.PartialSuccess = &collogpb.ExportLogsPartialSuccess{RejectedLogRecords: f.answer.rejected, ErrorMessage: "too old"}
	}
	return resp, nil
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.headers = append(f.headers, r.Header.Get("X-Tenant")+"|"+r.Header.Get("Authorization"))
	if f.answer.httpStatus != 0 && f.answer.httpStatus != http.StatusOK {
		http.Error(w, "told to fail", f.answer.httpStatus)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req collogpb.ExportLogsServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, _ := f.reply(&req)
	b, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

// TestErrorClassification checks that the receiver's answers reach the host as the OTLP
// specification classifies them, and that headers (from headers and headers_env) are sent.
func TestErrorClassification(t *testing.T) {
	t.Setenv("FLOWKER_AUDIT_TEST_OTLP_AUTH", "Bearer s3cret")
	grpcFake := &fakeReceiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collogpb.RegisterLogsServiceServer(srv, grpcFake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	httpFake := &fakeReceiver{}
	hs := httptest.NewServer(httpFake)
	t.Cleanup(hs.Close)

	headers := map[string]any{"headers": map[string]string{"x-tenant": "audit"},
		"headers_env": map[string]string{"authorization": "FLOWKER_AUDIT_TEST_OTLP_AUTH"}}
	for _, tc := range []struct {
		protocol  string
		answer    answer
		permanent bool // false: retryable; ok answers have permanent false and no error
		ok        bool
	}{
		{ProtocolGRPC, answer{}, false, true},
		{ProtocolGRPC, answer{code: codes.Unavailable}, false, false},
		{ProtocolGRPC, answer{code: codes.ResourceExhausted}, false, false},
		{ProtocolGRPC, answer{code: codes.Aborted}, false, false},
		{ProtocolGRPC, answer{code: codes.InvalidArgument}, true, false},
		{ProtocolGRPC, answer{code: codes.Unauthenticated}, true, false},
		{ProtocolGRPC, answer{code: codes.PermissionDenied}, true, false},
		{ProtocolGRPC, answer{rejected: 3}, true, false},
		{ProtocolHTTP, answer{}, false, true},
		{ProtocolHTTP, answer{httpStatus: http.StatusServiceUnavailable}, false, false},
		{ProtocolHTTP, answer{httpStatus: http.StatusTooManyRequests}, false, false},
		{ProtocolHTTP, answer{httpStatus: http.StatusBadGateway}, false, false},
		{ProtocolHTTP, answer{httpStatus: http.StatusBadRequest}, true, false},
		{ProtocolHTTP, answer{httpStatus: http.StatusUnauthorized}, true, false},
		{ProtocolHTTP, answer{httpStatus: http.StatusRequestEntityTooLarge}, true, false},
		{ProtocolHTTP, answer{rejected: 3}, true, false},
	} {
		fake, ep := grpcFake, "http://"+lis.Addr().String()
		if tc.protocol == ProtocolHTTP {
			fake, ep = httpFake, hs.URL
		}
		fake.set(tc.answer)
		cfg := map[string]any{"endpoint": ep, "protocol": tc.protocol}
		for k, v := range headers {
			cfg[k] = v
		}
		s := newSink(t, cfg)
		err := s.Write(t.Context(), sinktest.GenerateChain("c", 5, sinktest.GenOptions{Seed: 3}))
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s %+v: %v", tc.protocol, tc.answer, err)
		case !tc.ok && err == nil:
			t.Errorf("%s %+v: no error", tc.protocol, tc.answer)
		case !tc.ok && sink.IsPermanent(err) != tc.permanent:
			t.Errorf("%s %+v: permanent = %v, want %v (%v)", tc.protocol, tc.answer, sink.IsPermanent(err), tc.permanent, err)
		}
	}
	for _, f := range []*fakeReceiver{grpcFake, httpFake} {
		for _, h := range f.headers {
			if h != "audit|Bearer s3cret" {
				t.Fatalf("headers seen by the receiver: %q, want \"audit|Bearer s3cret\"", h)
			}
		}
	}
	// Nobody listening: retryable.
	s := newSink(t, map[string]any{"endpoint": "http://127.0.0.1:1", "protocol": ProtocolHTTP})
	if err := s.Write(t.Context(), sinktest.GenerateChain("c", 1, sinktest.GenOptions{Seed: 3})); err == nil || sink.IsPermanent(err) {
		t.Fatalf("write to a closed port: %v, want a retryable error", err)
	}
}

// TestSplitsLargeBatches checks that a batch larger than max_request_bytes goes out as several
// requests, all of it delivered.
func TestSplitsLargeBatches(t *testing.T) {
	fake := &fakeReceiver{}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	s := newSink(t, map[string]any{"endpoint": hs.URL, "protocol": ProtocolHTTP, "max_request_bytes": 65536})
	events := sinktest.GenerateChain("c", 400, sinktest.GenOptions{Seed: 4})
	if err := s.Write(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	if fake.records != len(events) || len(fake.headers) < 2 {
		t.Fatalf("%d records in %d requests, want %d records in several", fake.records, len(fake.headers), len(events))
	}
}
