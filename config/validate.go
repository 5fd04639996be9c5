package config

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

var pluginKey = regexp.MustCompile(`^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+|\[[0-9]+\])*$`)

var sinkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Rule kinds understood by the inference engine.
const (
	KindStandard        = ""                 // one event per request
	KindExecutionStart  = "execution_start"  // EXECUTION_STARTED once per executionId, replays skipped
	KindExecutionStatus = "execution_status" // a read whose response may reveal a terminal status
)

// Validate checks cfg and returns every problem found (nil when valid). Plugin names and the
// config blocks of bundled plugins are checked when plugins is not nil.
func Validate(cfg *Config, plugins PluginCatalog) Errors {
	var errs Errors
	if cfg.Version != CurrentVersion {
		errs.add("version", "must be %d (this build understands configuration version %d only)", CurrentVersion, CurrentVersion)
	}
	if u, err := url.Parse(cfg.Upstream.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.add("upstream.url", "must be an absolute http(s) URL such as http://127.0.0.1:4021, got %q", cfg.Upstream.URL)
	} else if u.RawQuery != "" || u.Fragment != "" {
		errs.add("upstream.url", "must not contain a query or fragment")
	}
	checkAddr(&errs, "listen.addr", cfg.Listen.Addr)
	if cfg.Admin.Addr != "" {
		checkAddr(&errs, "admin.addr", cfg.Admin.Addr)
		if cfg.Admin.Addr == cfg.Listen.Addr && !strings.HasSuffix(cfg.Admin.Addr, ":0") {
			errs.add("admin.addr", "must differ from listen.addr (metrics and health are on a separate listener)")
		}
	}
	if strings.TrimSpace(cfg.DataDir) == "" {
		errs.add("data_dir", "must be set (the journal lives there)")
	}
	if cfg.Chain.ID != "" && !regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`).MatchString(cfg.Chain.ID) {
		errs.add("chain.id", "must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
	}
	checkFailMode(&errs, "journal.fail_mode", cfg.Journal.FailMode, false)
	if cfg.Journal.MaxBytes < 1<<20 {
		errs.add("journal.max_bytes", "must be at least 1MiB, got %d", cfg.Journal.MaxBytes)
	}
	if cfg.Journal.GroupCommitMax < 1 || cfg.Journal.GroupCommitMax > 100000 {
		errs.add("journal.group_commit_max", "must be between 1 and 100000, got %d", cfg.Journal.GroupCommitMax)
	}
	if cfg.Journal.CompactEvery <= 0 {
		errs.add("journal.compact_every", "must be positive")
	}
	for i, k := range cfg.Auth.APIKeys {
		if strings.TrimSpace(k) == "" {
			errs.add(fmt.Sprintf("auth.api_keys[%d]", i), "must not be empty")
		} else if len(k) < 8 {
			errs.add(fmt.Sprintf("auth.api_keys[%d]", i), "is too short (at least 8 characters)")
		}
	}
	if cfg.Auth.CursorKey != "" && len(cfg.Auth.CursorKey) < 16 {
		errs.add("auth.cursor_key", "must be at least 16 characters")
	}
	if cfg.Identity.FingerprintKey != "" && len(cfg.Identity.FingerprintKey) < 16 {
		errs.add("identity.fingerprint_key", "must be at least 16 characters (a short key lets anyone who sees a fingerprint guess the API key behind it faster)")
	}
	for name := range cfg.Identity.APIKeyNames {
		if !regexp.MustCompile(`^key:[0-9a-f]{12}$`).MatchString(name) {
			errs.add("identity.api_key_names."+name, "must be a key fingerprint such as key:7734d7c1c7fd (see flowker-audit fingerprint)")
		}
	}
	if h := cfg.Identity.TrustedHeader; h != "" {
		if http.CanonicalHeaderKey(h) == "Authorization" || http.CanonicalHeaderKey(h) == "X-Api-Key" || strings.ContainsAny(h, " :") {
			errs.add("identity.trusted_header", "must be a plain header name other than Authorization and X-API-Key")
		}
		if len(cfg.TrustedProxies) == 0 {
			errs.add("identity.trusted_header", "is only honoured from trusted_proxies, and none are configured")
		}
	}
	j := cfg.Identity.JWT
	if n := btoi(j.JWKSURL != "") + btoi(j.PublicKeyFile != "") + btoi(j.HMACSecret != ""); n > 1 {
		errs.add("identity.jwt", "set at most one of jwks_url, public_key_file and hmac_secret")
	}
	if j.JWKSURL != "" {
		if u, err := url.Parse(j.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs.add("identity.jwt.jwks_url", "must be an absolute http(s) URL")
		}
	}
	for i, p := range cfg.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs.add(fmt.Sprintf("trusted_proxies[%d]", i), "must be an IP address or CIDR such as 10.0.0.0/8, got %q", p)
		}
	}
	if cfg.Capture.MaxBodyBytes > 16<<20 {
		errs.add("capture.max_body_bytes", "must be at most 16MiB")
	}
	if cfg.Capture.MaxHoldTotal < cfg.Capture.MaxHoldBytes {
		errs.add("capture.max_hold_total", "must be at least capture.max_hold_bytes (%d)", int64(cfg.Capture.MaxHoldBytes))
	}
	if cfg.Capture.MaxHoldBytes < 64<<10 || cfg.Capture.MaxHoldBytes > 256<<20 {
		errs.add("capture.max_hold_bytes", "must be between 64KiB and 256MiB")
	}
	for i, p := range cfg.Capture.RedactKeys {
		if _, err := regexp.Compile("(?i)" + p); err != nil {
			errs.add(fmt.Sprintf("capture.redact_keys[%d]", i), "invalid regular expression: %v", err)
		}
	}
	if cfg.Capture.MaxHoldAnonymous > cfg.Capture.MaxHoldTotal/2 {
		errs.add("capture.max_hold_anonymous", "must be at most half of capture.max_hold_total (%d)", int64(cfg.Capture.MaxHoldTotal)/2)
	}
	for i, p := range cfg.Capture.KeepKeys {
		if _, err := regexp.Compile(p); err != nil {
			errs.add(fmt.Sprintf("capture.keep_keys[%d]", i), "invalid regular expression: %v", err)
		}
	}
	if k := cfg.Capture.DigestKey; k != "" && len(k) < 32 {
		errs.add("capture.digest_key", "must be at least 32 characters")
	}
	if cfg.Listen.BodyIdleTimeout <= 0 || cfg.Listen.BodyIdleTimeout > Duration(time.Hour) {
		errs.add("listen.body_idle_timeout", "must be between 1ns and 1h")
	}
	if cfg.Listen.BodyReadTimeout < cfg.Listen.BodyIdleTimeout {
		errs.add("listen.body_read_timeout", "must be at least listen.body_idle_timeout")
	}
	for i, p := range cfg.Capture.RedactPaths {
		checkRedactPath(&errs, fmt.Sprintf("capture.redact_paths[%d]", i), p)
	}
	if cfg.Journal.OnceRetention < 0 {
		errs.add("journal.once_retention", "must be 0 (keep forever) or positive")
	}
	if ci := cfg.Chain.CheckpointInterval; ci < 0 || (ci > 0 && ci.D() < time.Second) {
		errs.add("chain.checkpoint_interval", "must be 0 (off) or at least 1s, got %s", ci.D())
	}
	for i, k := range cfg.Chain.CheckpointPublicKeys {
		if strings.TrimSpace(k) == "" {
			errs.add(fmt.Sprintf("chain.checkpoint_public_keys[%d]", i), "is empty")
		}
	}
	validateRules(&errs, cfg.Rules)
	w := cfg.Watcher
	if w.Enabled {
		if w.Interval <= 0 || w.MaxInterval < w.Interval {
			errs.add("watcher", "interval must be positive and max_interval at least interval")
		}
		if w.MaxInFlight < 1 || w.MaxInFlight > 1024 {
			errs.add("watcher.max_in_flight", "must be between 1 and 1024")
		}
		validateWatcherCredentials(&errs, w)
	}
	validateSinks(&errs, cfg.Sinks, plugins)
	validateRetentionNeedsCheckpoints(&errs, cfg)
	if !slices.Contains([]string{"json", "text"}, cfg.Log.Format) {
		errs.add("log.format", "must be json or text, got %q", cfg.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.Log.Level) {
		errs.add("log.level", "must be debug, info, warn or error, got %q", cfg.Log.Level)
	}
	if cfg.ShutdownTimeout <= 0 {
		errs.add("shutdown_timeout", "must be positive")
	}
	return errs
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func checkAddr(errs *Errors, path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		errs.add(path, "must be host:port such as :4020 or 127.0.0.1:4020, got %q", addr)
		return
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, "/ ") {
		errs.add(path, "invalid host %q", host)
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p < 0 || p > 65535 {
		errs.add(path, "invalid port %q", port)
	}
}

func checkFailMode(errs *Errors, path, mode string, allowEmpty bool) {
	if mode == "" && allowEmpty {
		return
	}
	if mode != FailClosed && mode != FailOpen {
		errs.add(path, "must be %s or %s, got %q", FailClosed, FailOpen, mode)
	}
}

var redactPath = regexp.MustCompile(`^([A-Za-z0-9_$@-]+|\*)(\.([A-Za-z0-9_$@-]+|\*))*$`)

func checkRedactPath(errs *Errors, path, p string) {
	if !redactPath.MatchString(p) {
		errs.add(path, "must be a dot path with * wildcards such as config.* or nodes.*.data.token, got %q", p)
	}
}

var (
	ruleMethods  = []string{"*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	sourceRegexp = regexp.MustCompile(`^(path|request|response|response_header|literal):.+$`)
	ruleKinds    = []string{KindStandard, KindExecutionStart, KindExecutionStatus}
)

func validateRules(errs *Errors, rules []Rule) {
	seen := map[string]int{}
	for i, r := range rules {
		p := fmt.Sprintf("rules[%d]", i)
		m := strings.ToUpper(r.Method)
		if !slices.Contains(ruleMethods, m) {
			errs.add(p+".method", "must be one of %s, got %q", strings.Join(ruleMethods, ", "), r.Method)
		}
		if !strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "//") || strings.ContainsAny(r.Path, "?# ") {
			errs.add(p+".path", "must be a path template starting with / such as /v1/workflows/{id}/activate, got %q", r.Path)
		} else if strings.Contains(r.Path, "*") && !strings.HasSuffix(r.Path, "/*") {
			errs.add(p+".path", "a * wildcard is allowed only as the last segment")
		}
		key := m + " " + strings.ToLower(strings.TrimRight(r.Path, "/"))
		if j, dup := seen[key]; dup {
			errs.add(p, "same method and path as rules[%d]", j)
		}
		seen[key] = i
		if !slices.Contains(ruleKinds, r.Kind) {
			errs.add(p+".kind", "must be empty, %s or %s, got %q", KindExecutionStart, KindExecutionStatus, r.Kind)
		}
		if r.Kind == KindExecutionStatus && m != "GET" {
			errs.add(p+".method", "an %s rule reads a status: its method must be GET, got %q", KindExecutionStatus, r.Method)
		}
		audited := r.Audit == nil || *r.Audit
		if audited && r.Kind != KindExecutionStatus {
			if !slices.Contains(chain.EventTypes, r.EventType) {
				errs.add(p+".event_type", "must be one of %s, got %q", strings.Join(chain.EventTypes, ", "), r.EventType)
			}
			if !slices.Contains(chain.Actions, r.Action) {
				errs.add(p+".action", "must be one of %s, got %q", strings.Join(chain.Actions, ", "), r.Action)
			}
			if !slices.Contains(chain.ResourceTypes, r.ResourceType) {
				errs.add(p+".resource_type", "must be one of %s, got %q", strings.Join(chain.ResourceTypes, ", "), r.ResourceType)
			}
		}
		for j, s := range r.ResourceID {
			if !sourceRegexp.MatchString(s) {
				errs.add(fmt.Sprintf("%s.resource_id[%d]", p, j), "must be path:NAME, request:FIELD, response:FIELD, response_header:NAME or literal:VALUE, got %q", s)
			}
		}
		for k, srcs := range r.Metadata {
			for j, s := range srcs {
				if !sourceRegexp.MatchString(s) {
					errs.add(fmt.Sprintf("%s.metadata.%s[%d]", p, k, j), "must be path:NAME, request:FIELD, response:FIELD, response_header:NAME or literal:VALUE, got %q", s)
				}
			}
		}
		for j, rp := range r.Redact {
			checkRedactPath(errs, fmt.Sprintf("%s.redact[%d]", p, j), rp)
		}
		checkFailMode(errs, p+".fail_mode", r.FailMode, true)
	}
}

func validateSinks(errs *Errors, sinks []Sink, plugins PluginCatalog) {
	if len(sinks) == 0 {
		errs.add("sinks", "at least one sink is required")
		return
	}
	names := map[string]int{}
	queries := 0
	for i, s := range sinks {
		p := fmt.Sprintf("sinks[%d]", i)
		if !sinkName.MatchString(s.Name) {
			errs.add(p+".name", "must be 1-63 lower-case letters, digits, '_' or '-', got %q", s.Name)
		} else if j, dup := names[s.Name]; dup {
			errs.add(p+".name", "%q is already used by sinks[%d]", s.Name, j)
		} else {
			names[s.Name] = i
		}
		var bundledNames []string
		if plugins != nil {
			bundledNames = plugins.Bundled()
		}
		bundled := slices.Contains(bundledNames, s.Plugin) || (plugins == nil && !strings.ContainsRune(s.Plugin, '/'))
		switch {
		case s.Plugin == "":
			errs.add(p+".plugin", "must name a bundled plugin (%s) or the path of a plugin binary", strings.Join(bundledNames, ", "))
		case !bundled && !strings.ContainsRune(s.Plugin, '/'):
			errs.add(p+".plugin", "unknown bundled plugin %q (bundled: %s); give a path such as ./plugins/mysink for an external plugin", s.Plugin, strings.Join(bundledNames, ", "))
		}
		if s.SHA256 != "" {
			if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 {
				errs.add(p+".sha256", "must be 64 hexadecimal characters")
			} else if bundled {
				errs.add(p+".sha256", "applies only to a plugin given by path, not to the bundled %q", s.Plugin)
			}
		}
		if s.Query {
			queries++
			if plugins != nil && bundled && !plugins.Queryable(s.Plugin) {
				errs.add(p+".query", "the %s plugin only writes (it cannot read events back to answer the audit API); keep a sqlite or clickhouse sink with query: true", s.Plugin)
			}
		}
		validateRetention(errs, p, s, bundled, plugins)
		if s.BatchSize < 0 || s.BatchSize > 100000 {
			errs.add(p+".batch_size", "must be between 1 and 100000")
		}
		if s.BatchBytes < 0 || s.BatchBytes > 256<<20 {
			errs.add(p+".batch_bytes", "must be at most 256MiB")
		}
		if plugins != nil && s.Plugin != "" {
			raw, err := json.Marshal(s.Config)
			if err != nil {
				errs.add(p+".config", "cannot be represented as JSON: %v", err)
				continue
			}
			if known, err := plugins.ValidateConfig(s.Plugin, raw); known && err != nil {
				addPluginErrors(errs, p+".config", err)
			}
		}
	}
	if queries != 1 {
		errs.add("sinks", "exactly one sink must have query: true (it answers the audit API), found %d", queries)
	}
}

// addPluginErrors folds a plugin's "key: problem" lines into field paths under prefix. A summary
// line without a key (e.g. "invalid clickhouse sink configuration") is dropped when keyed lines
// follow it.
func addPluginErrors(errs *Errors, prefix string, err error) {
	if pe, ok := errors.AsType[*pluginconfig.Error](err); ok {
		for _, p := range pe.Problems {
			path := prefix
			if p.Key != "" {
				path += "." + p.Key
			}
			*errs = append(*errs, FieldError{Path: path, Msg: p.Message})
		}
		return
	}
	var keyed, plain []FieldError
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if k, msg, ok := strings.Cut(line, ": "); ok && pluginKey.MatchString(k) {
			keyed = append(keyed, FieldError{Path: prefix + "." + k, Msg: msg})
		} else {
			plain = append(plain, FieldError{Path: prefix, Msg: line})
		}
	}
	if len(keyed) == 0 {
		keyed = plain
	}
	*errs = append(*errs, keyed...)
}

// validateWatcherCredentials: at most one way to get the Authorization header, and OAuth2
// client credentials complete.
func validateWatcherCredentials(errs *Errors, w Watcher) {
	o := w.OAuth2
	set := 0
	for _, v := range []string{w.Authorization, w.TokenFile, o.TokenURL} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		errs.add("watcher", "set at most one of authorization, token_file and oauth2.token_url (each sets the Authorization header)")
	}
	if o.TokenURL == "" {
		if o.ClientID != "" || o.ClientSecret != "" || o.ClientSecretFile != "" || len(o.Scopes) > 0 {
			errs.add("watcher.oauth2", "token_url is required when other watcher.oauth2 keys are set")
		}
		return
	}
	if u, err := url.Parse(o.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs.add("watcher.oauth2.token_url", "must be an absolute http(s) URL")
	}
	if o.ClientID == "" {
		errs.add("watcher.oauth2.client_id", "is required with watcher.oauth2.token_url")
	}
	if (o.ClientSecret == "") == (o.ClientSecretFile == "") {
		errs.add("watcher.oauth2", "set exactly one of client_secret (FLOWKER_AUDIT_WATCHER_OAUTH2_CLIENT_SECRET) and client_secret_file")
	}
	if o.RefreshBefore < 0 {
		errs.add("watcher.oauth2.refresh_before", "must not be negative")
	}
}
