package config

import "time"

// Default returns the built-in defaults: the sidecar on :4020 in front of Flowker on
// 127.0.0.1:4021, metrics on 127.0.0.1:9464, data under ./data, the embedded SQLite sink.
func Default() *Config {
	return &Config{
		Version: CurrentVersion,
		Upstream: Upstream{
			URL:                   "http://127.0.0.1:4021",
			DialTimeout:           Duration(5 * time.Second),
			ResponseHeaderTimeout: Duration(60 * time.Second),
			MaxIdleConns:          256,
		},
		Listen: Listen{
			Addr:              ":4020",
			ReadHeaderTimeout: Duration(10 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			BodyIdleTimeout:   Duration(30 * time.Second),
			BodyReadTimeout:   Duration(5 * time.Minute),
		},
		Admin:   Admin{Addr: "127.0.0.1:9464"},
		DataDir: "./data",
		Chain:   Chain{CheckpointInterval: Duration(time.Minute), ScrubInterval: Duration(time.Minute), ScrubBatch: 100000},
		Journal: Journal{
			MaxBytes:       ByteSize(1 << 30),
			Fsync:          true,
			FailMode:       FailClosed,
			GroupCommitMax: 1024,
			CompactEvery:   Duration(10 * time.Second),
			OnceRetention:  Duration(30 * 24 * time.Hour),
		},
		AccessEvents: AccessEvents{MaxBytes: ByteSize(64 << 20)},
		Auth:         Auth{DelegateCacheTTL: Duration(30 * time.Second)},
		Identity: Identity{
			JWT: JWT{JWKSRefresh: Duration(15 * time.Minute)},
		},
		Capture: Capture{
			MaxBodyBytes:     ByteSize(64 << 10),
			MaxHoldBytes:     ByteSize(8 << 20),
			MaxHoldTotal:     ByteSize(256 << 20),
			MaxHoldAnonymous: ByteSize(16 << 20),
			Bodies:           true,
		},
		Watcher: Watcher{
			Enabled:     true,
			Interval:    Duration(500 * time.Millisecond),
			MaxInterval: Duration(30 * time.Second),
			MaxInFlight: 8,
			GiveUpAfter: Duration(24 * time.Hour),
			OAuth2:      WatcherOAuth2{RefreshBefore: Duration(time.Minute)},
		},
		Sinks: []Sink{{
			Name:   "store",
			Plugin: "sqlite",
			Query:  true,
			Config: map[string]any{}, // path: <data_dir>/audit.db (see Parse)
		}},
		Log:             Log{Format: "json", Level: "info"},
		ShutdownTimeout: Duration(20 * time.Second),
	}
}

// Failure modes.
const (
	FailClosed = "fail_closed"
	FailOpen   = "fail_open"
)

// SinkDefaults fills the batching settings a sink left unset. ClickHouse wants few large inserts
// (about one per second), the others small fast batches.
func SinkDefaults(s *Sink) {
	big := s.Plugin == "clickhouse"
	if s.BatchSize == 0 {
		s.BatchSize = 1000
		if big {
			s.BatchSize = 5000
		}
	}
	if s.BatchBytes == 0 {
		s.BatchBytes = ByteSize(8 << 20)
		if big {
			s.BatchBytes = ByteSize(32 << 20)
		}
	}
	if s.BatchInterval == 0 {
		s.BatchInterval = Duration(100 * time.Millisecond)
		if big {
			s.BatchInterval = Duration(time.Second)
		}
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = Duration(30 * time.Second)
	}
}
