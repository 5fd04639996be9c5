package sink

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hclogTimeLayout is the "@timestamp" layout go-plugin's host parses in plugin log lines.
const hclogTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// NewLogger returns a logger for code running inside a plugin. It writes one JSON object per
// line to w (normally os.Stderr) in the shape hashicorp/go-plugin's host understands
// ("@level", "@message", "@timestamp"), so the sidecar re-logs every line through its own logger
// at the line's level, tagged with the plugin's name.
//
// Create it before calling Serve and pass os.Stderr: once serving, go-plugin points os.Stderr at
// a pipe the host does not log.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format(hclogTimeLayout))
			case slog.LevelKey:
				lvl, _ := a.Value.Any().(slog.Level)
				return slog.String("@level", hclogLevelOf(lvl).String())
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

// levelTrace is the slog level used for hclog's Trace.
const levelTrace = slog.LevelDebug - 4

func hclogLevelOf(l slog.Level) hclog.Level {
	switch {
	case l < slog.LevelDebug:
		return hclog.Trace
	case l < slog.LevelInfo:
		return hclog.Debug
	case l < slog.LevelWarn:
		return hclog.Info
	case l < slog.LevelError:
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func slogLevelOf(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// slogHCLogger adapts an slog.Logger to the hclog.Logger go-plugin wants, so go-plugin's own
// messages and the lines it re-logs from a plugin's stderr end up in the injected slog logger.
type slogHCLogger struct {
	l       *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*slogHCLogger)(nil)

func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	return &slogHCLogger{l: l, name: name}
}

func (h *slogHCLogger) Log(level hclog.Level, msg string, args ...any) {
	lvl := slogLevelOf(level)
	ctx := context.Background()
	if !h.l.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]any, 0, len(h.implied)+len(args)+2)
	if h.name != "" {
		attrs = append(attrs, slog.String("logger", h.name))
	}
	attrs = append(attrs, h.implied...)
	attrs = append(attrs, normalizeArgs(args)...)
	h.l.Log(ctx, lvl, msg, attrs...)
}

// normalizeArgs turns hclog's key/value list into slog arguments. hclog allows a trailing lone
// value and non-string keys; slog would report those as !BADKEY.
func normalizeArgs(args []any) []any {
	out := make([]any, 0, len(args))
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			out = append(out, slog.Any("extra", args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		v := args[i+1]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		out = append(out, slog.Any(key, v))
	}
	return out
}

func (h *slogHCLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *slogHCLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *slogHCLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *slogHCLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *slogHCLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *slogHCLogger) enabled(l hclog.Level) bool {
	return h.l.Enabled(context.Background(), slogLevelOf(l))
}

func (h *slogHCLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *slogHCLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *slogHCLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *slogHCLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *slogHCLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *slogHCLogger) ImpliedArgs() []any { return h.implied }

func (h *slogHCLogger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), normalizeArgs(args)...)
	return &c
}

func (h *slogHCLogger) Name() string { return h.name }

func (h *slogHCLogger) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (h *slogHCLogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel is a no-op: the level belongs to the injected slog handler.
func (h *slogHCLogger) SetLevel(hclog.Level) {}

// GetLevel reports the lowest level the slog handler accepts (go-plugin skips parsing plugin
// log lines below it).
func (h *slogHCLogger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (h *slogHCLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *slogHCLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return writerFunc(func(p []byte) (int, error) {
		h.Log(level, strings.TrimRight(string(p), "\n"))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// discardLogger returns a logger that drops everything.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
