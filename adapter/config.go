package adapter

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/normalize"
	"github.com/sidecarkit/sidecarkit/adapter/parse"
	"github.com/sidecarkit/sidecarkit/adapter/pipeline"
	"github.com/sidecarkit/sidecarkit/shared/config"

	// --timezone must resolve IANA names in the FROM-scratch image, which
	// has no /usr/share/zoneinfo: embed Go's copy (~450 KB).
	_ "time/tzdata"
)

// Config is the adapter's whole configuration.
type Config struct {
	Paths        []string
	Exclude      []string
	ReadFrom     string
	Parser       string
	ParserRegex  string
	Parsers      []string // "glob=parser" overrides
	Multiline    string
	MLStart      string
	MLContinue   string
	MLTimeout    time.Duration
	MLMaxLines   int
	Timezone     string
	TSLayouts    []string // [GLOB=]PATTERN
	DefaultLevel string
	Host         string
	Pod          string
	Namespace    string
	Container    string
	Static       []string // key=value

	Output     string
	OutputFile string
	ESURLs     []string
	ESUser     string
	ESPassword string
	ESAPIKey   string
	ESCAFile   string
	ESCertFile string
	ESKeyFile  string
	ESInsecure bool
	ESGzip     bool
	ESHeaders  []string
	ESIndex    string
	ESStream   bool
	ESTimeout  time.Duration
	DeadLetter string
	Checkpoint string

	BatchDocs     int
	BatchBytes    int
	FlushInterval time.Duration
	QueueBatches  int
	Senders       int
	RetryInitial  time.Duration
	RetryMax      time.Duration

	MaxLineBytes int
	PollInterval time.Duration
	ScanInterval time.Duration
	RotateWait   time.Duration
	Fsnotify     bool
	MaxOpenFiles int
}

// Bind registers every option on l.
func Bind(l *config.Loader, c *Config) {
	l.Strings(&c.Paths, "paths", nil, "log files to follow: globs, comma-separated (e.g. /var/log/app/*.log)")
	l.Strings(&c.Exclude, "exclude", nil, "globs of paths (or base names) to skip (e.g. *.gz)")
	l.String(&c.ReadFrom, "read-from", "head", "files found at start without a checkpoint: head or tail (files appearing later are always read from the head)")
	l.String(&c.Parser, "parser", "legacy", "line format: legacy, json, logfmt, regex, syslog, syslog3164, syslog5424, combined, cri, none")
	l.String(&c.ParserRegex, "parser-regex", "", "regular expression with named groups for --parser regex (time, level, message and any other names)")
	l.Strings(&c.Parsers, "parsers", nil, "per-path parsers, GLOB=PARSER, first match wins (e.g. /var/log/nginx/*.log=combined)")
	l.String(&c.Multiline, "multiline", "", "group stack traces into one document: java, python, go, or custom (with --multiline-start)")
	l.String(&c.MLStart, "multiline-start", "", "regular expression matching the first line of a record")
	l.String(&c.MLContinue, "multiline-continue", "", "regular expression matching lines that continue the record before them")
	l.Duration(&c.MLTimeout, "multiline-timeout", time.Second, "ship a held multiline record after this long without a new line")
	l.Int(&c.MLMaxLines, "multiline-max-lines", 500, "cut a multiline record after this many lines")
	l.Strings(&c.TSLayouts, "timestamp-layout", nil, "timestamp layouts tried first, [GLOB=]PATTERN, first match wins: yy/MM/dd HH:mm:ss (Spark), yyMMdd HHmmss (HDFS), or a Go layout")
	l.String(&c.Timezone, "timezone", "UTC", "time zone of timestamps that carry none (IANA name, e.g. Europe/Berlin, or Local)")
	l.String(&c.DefaultLevel, "default-level", "INFO", "level of lines that carry none")
	l.String(&c.Host, "host", "", "host.name of every document (default: the hostname)")
	l.Env("host", "NODE_NAME", "HOSTNAME")
	l.String(&c.Pod, "pod-name", "", "kubernetes.pod.name (downward API)")
	l.Env("pod-name", "POD_NAME")
	l.String(&c.Namespace, "pod-namespace", "", "kubernetes.namespace (downward API)")
	l.Env("pod-namespace", "POD_NAMESPACE")
	l.String(&c.Container, "container-name", "", "kubernetes.container.name")
	l.Env("container-name", "CONTAINER_NAME")
	l.Strings(&c.Static, "static-fields", nil, "extra fields on every document, KEY=VALUE, comma-separated")

	l.String(&c.Output, "output", "elasticsearch", "where documents go: elasticsearch, stdout, file, discard")
	l.String(&c.OutputFile, "output-file", "", "file for --output file (JSON lines)")
	l.Strings(&c.ESURLs, "es-url", []string{"http://127.0.0.1:9200"}, "Elasticsearch base URLs (bulk requests go to URL/_bulk; VictoriaLogs: http://host:9428/insert/elasticsearch)")
	l.String(&c.ESUser, "es-username", "", "basic auth user")
	l.String(&c.ESPassword, "es-password", "", "basic auth password (prefer the env var ADAPTER_ES_PASSWORD)")
	l.String(&c.ESAPIKey, "es-api-key", "", "API key (base64 id:key), sent as Authorization: ApiKey")
	l.String(&c.ESCAFile, "es-ca-file", "", "PEM CA bundle to verify the server")
	l.String(&c.ESCertFile, "es-cert-file", "", "PEM client certificate (mutual TLS)")
	l.String(&c.ESKeyFile, "es-key-file", "", "PEM client key (mutual TLS)")
	l.Bool(&c.ESInsecure, "es-insecure-skip-verify", false, "do not verify the server's certificate")
	l.Bool(&c.ESGzip, "es-gzip", true, "gzip bulk request bodies")
	l.Strings(&c.ESHeaders, "es-header", nil, "extra request headers, 'Name: value' (VictoriaLogs: 'VL-Time-Field: @timestamp', 'VL-Msg-Field: message')")
	l.String(&c.ESIndex, "es-index", "logs-%Y.%m.%d", "index name (%Y %m %d from @timestamp), or the data stream name with --es-data-stream")
	l.Bool(&c.ESStream, "es-data-stream", false, "write to a data stream (op_type create; a re-sent document meets its own _id and is not doubled)")
	l.Duration(&c.ESTimeout, "es-timeout", 60*time.Second, "timeout of one bulk request")
	l.String(&c.DeadLetter, "dead-letter-file", "/var/lib/adapter/dead-letter.ndjson", "where documents the output rejects (4xx) are written, with the error")
	l.String(&c.Checkpoint, "checkpoint-file", "/var/lib/adapter/checkpoint.json", "where shipped positions are kept (empty: in memory only)")

	l.Int(&c.BatchDocs, "batch-docs", 5000, "flush a bulk request at this many documents")
	l.Int(&c.BatchBytes, "batch-bytes", 2<<20, "flush a bulk request at this many bytes (uncompressed)")
	l.Duration(&c.FlushInterval, "flush-interval", time.Second, "flush a bulk request this long after its first document")
	l.Int(&c.QueueBatches, "queue-batches", 2, "batches that may wait for a sender (bounded memory: reading stops when full)")
	l.Int(&c.Senders, "senders", 2, "concurrent bulk requests")
	l.Duration(&c.RetryInitial, "retry-initial", 250*time.Millisecond, "first retry delay (doubles, with jitter)")
	l.Duration(&c.RetryMax, "retry-max", 30*time.Second, "longest retry delay")

	l.Int(&c.MaxLineBytes, "max-line-bytes", 1<<20, "lines longer than this are cut (marked …[truncated] and counted)")
	l.Duration(&c.PollInterval, "poll-interval", 250*time.Millisecond, "check files for new data this often when no event arrives")
	l.Duration(&c.ScanInterval, "scan-interval", time.Second, "look for new, rotated and truncated files this often")
	l.Duration(&c.RotateWait, "rotate-wait", 5*time.Second, "keep reading a rotated or deleted file until it has not grown for this long")
	l.Bool(&c.Fsnotify, "fsnotify", true, "react to file system events (polling runs anyway)")
	l.Int(&c.MaxOpenFiles, "max-open-files", 0, "most log files held open at once (0: half the open-file limit); files read to their end are closed when more are needed and reopened by identity when they grow")
}

// Validate returns every problem in c, each naming the option and value.
func Validate(l *config.Loader, c *Config) error {
	var p config.Problems
	if len(c.Paths) == 0 {
		p.Add("paths", "", "at least one path or glob is required")
	}
	for _, g := range append(append([]string(nil), c.Paths...), c.Exclude...) {
		if _, err := filepath.Match(g, ""); err != nil {
			p.Add("paths/exclude", g, "bad glob: %v", err)
		}
	}
	if c.ReadFrom != "head" && c.ReadFrom != "tail" {
		p.Add("read-from", c.ReadFrom, "want head or tail")
	}
	if _, err := parse.New(c.Parser, c.ParserRegex); err != nil {
		p.Add("parser", c.Parser, "%v", err)
	}
	for _, r := range c.Parsers {
		g, name, ok := strings.Cut(r, "=")
		if !ok || g == "" {
			p.Add("parsers", r, "want GLOB=PARSER")
			continue
		}
		if _, err := filepath.Match(g, ""); err != nil {
			p.Add("parsers", r, "bad glob: %v", err)
		}
		if _, err := parse.New(name, c.ParserRegex); err != nil {
			p.Add("parsers", r, "%v", err)
		}
	}
	if c.Multiline != "" || c.MLStart != "" || c.MLContinue != "" {
		preset := c.Multiline
		if preset == "custom" {
			preset = ""
		}
		if _, err := parse.NewMultiline(preset, c.MLStart, c.MLContinue, c.MLMaxLines, c.MaxLineBytes); err != nil {
			p.Add("multiline", c.Multiline, "%v", err)
		}
	}
	if _, err := layouts(c.TSLayouts); err != nil {
		p.Add("timestamp-layout", strings.Join(c.TSLayouts, ","), "%v", err)
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		p.Add("timezone", c.Timezone, "unknown time zone: %v", err)
	}
	for _, s := range c.Static {
		if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
			p.Add("static-fields", s, "want KEY=VALUE")
		}
	}
	switch c.Output {
	case "elasticsearch":
		if len(c.ESURLs) == 0 {
			p.Add("es-url", "", "at least one URL is required for --output elasticsearch")
		}
		for _, u := range c.ESURLs {
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				p.Add("es-url", redact(u), "want http(s)://host:port[/path]")
			}
		}
		if c.ESAPIKey != "" && (c.ESUser != "" || c.ESPassword != "") {
			p.Add("es-api-key", "<set>", "use either an API key or basic auth, not both")
		}
		if (c.ESCertFile == "") != (c.ESKeyFile == "") {
			p.Add("es-cert-file", c.ESCertFile, "--es-cert-file and --es-key-file go together")
		}
		for _, f := range []struct{ k, v string }{{"es-ca-file", c.ESCAFile}, {"es-cert-file", c.ESCertFile}, {"es-key-file", c.ESKeyFile}} {
			if f.v != "" {
				if _, err := os.Stat(f.v); err != nil {
					p.Add(f.k, f.v, "cannot read: %v", err)
				}
			}
		}
		if _, err := parseHeaders(c.ESHeaders); err != nil {
			p.Add("es-header", strings.Join(c.ESHeaders, ","), "%v", err)
		}
		if c.ESIndex == "" {
			p.Add("es-index", c.ESIndex, "must not be empty")
		} else if bare := strings.NewReplacer("%Y", "", "%y", "", "%m", "", "%d", "").Replace(c.ESIndex); strings.ToLower(bare) != bare {
			p.Add("es-index", c.ESIndex, "index names must be lower case")
		}
	case "file":
		if c.OutputFile == "" {
			p.Add("output-file", "", "required with --output file")
		}
	case "stdout", "discard":
	default:
		p.Add("output", c.Output, "want elasticsearch, stdout, file or discard")
	}
	for _, n := range []struct {
		k string
		v int
	}{{"batch-docs", c.BatchDocs}, {"batch-bytes", c.BatchBytes}, {"queue-batches", c.QueueBatches}, {"senders", c.Senders}, {"max-line-bytes", c.MaxLineBytes}, {"multiline-max-lines", c.MLMaxLines}} {
		if n.v < 1 {
			p.Add(n.k, n.v, "must be at least 1")
		}
	}
	if c.MaxOpenFiles < 0 {
		p.Add("max-open-files", c.MaxOpenFiles, "must not be negative (0: half the open-file limit)")
	}
	if c.MaxLineBytes > 64<<20 {
		p.Add("max-line-bytes", c.MaxLineBytes, "at most 64 MiB")
	}
	for _, d := range []struct {
		k string
		v time.Duration
	}{{"flush-interval", c.FlushInterval}, {"poll-interval", c.PollInterval}, {"scan-interval", c.ScanInterval}, {"rotate-wait", c.RotateWait}, {"multiline-timeout", c.MLTimeout}, {"retry-initial", c.RetryInitial}, {"retry-max", c.RetryMax}, {"es-timeout", c.ESTimeout}} {
		if d.v <= 0 {
			p.Add(d.k, d.v, "must be positive")
		}
	}
	return p.Err()
}

func parseHeaders(hs []string) (http.Header, error) {
	h := http.Header{}
	for _, s := range hs {
		k, v, ok := strings.Cut(s, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("header %q: want 'Name: value'", s)
		}
		h.Add(k, v)
	}
	return h, nil
}

// redact hides the password of a URL with user info.
func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		if i := strings.Index(u, "@"); i >= 0 {
			return "<redacted>" + u[i:]
		}
		return u
	}
	return pu.Redacted()
}

// layouts reads --timestamp-layout: [GLOB=]PATTERN entries.
func layouts(specs []string) ([]pipeline.Layout, error) {
	var out []pipeline.Layout
	for _, s := range specs {
		glob, pat := "", s
		if g, p, ok := strings.Cut(s, "="); ok {
			glob, pat = g, p
			if _, err := filepath.Match(glob, ""); err != nil {
				return nil, fmt.Errorf("%q: bad glob: %v", s, err)
			}
		}
		l, err := normalize.Layout(pat)
		if err != nil {
			return nil, err
		}
		out = append(out, pipeline.Layout{Glob: glob, Layout: l})
	}
	return out, nil
}
