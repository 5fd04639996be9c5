package fiberdiff

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkReadPathParsers weighs the design note of issue 14: a GET through the sidecar
// (net/http + httputil.ReverseProxy + rules), through a bare httputil.ReverseProxy, and through a
// bare fasthttp proxy (the parser Flowker's Fiber uses), same client and upstream. Run alone:
//
//	go test -run XXX -bench ReadPathParsers -benchtime 20000x ./internal/fiberdiff
func BenchmarkReadPathParsers(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c5160020-5d68-4a05-b984-cef31de6428a","name":"w","status":"active"}`)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)

	bare := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: &http.Transport{MaxIdleConnsPerHost: 256}})
	defer bare.Close()

	hc := &fasthttp.HostClient{Addr: u.Host, MaxConns: 256}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	fs := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Header.Del("Connection")
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error("bad gateway", fasthttp.StatusBadGateway)
		}
	}}
	go func() { _ = fs.Serve(ln) }()
	defer ln.Close() // Shutdown would wait for the clients' idle keep-alive connections

	sc := startSidecar(b, up.URL)
	path := "/v1/workflows/c5160020-5d68-4a05-b984-cef31de6428a"
	for _, tc := range []struct{ name, base string }{
		{"direct", up.URL}, {"httputil", bare.URL}, {"fasthttp", "http://" + ln.Addr().String()}, {"sidecar", sc.front.URL},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(tc.base + path)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
