package adapter

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/bulk"
	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
	"github.com/sidecarkit/sidecarkit/adapter/normalize"
	"github.com/sidecarkit/sidecarkit/adapter/output"
	"github.com/sidecarkit/sidecarkit/adapter/parse"
	"github.com/sidecarkit/sidecarkit/adapter/pipeline"
	"github.com/sidecarkit/sidecarkit/adapter/tail"
	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Helper is the adapter's app.Helper.
func Helper() app.Helper[Config] {
	return app.Helper[Config]{
		Name:      "adapter",
		AdminAddr: ":15200",
		Bind:      Bind,
		Validate:  Validate,
		Run:       Run,
	}
}

// HelperWithDocuments is Helper with --output stdout writing to docs
// instead of rt.Stdout: the command gives it the process's stdout and sends
// every log line to stderr, so the documents stream stays clean.
func HelperWithDocuments(docs io.Writer) app.Helper[Config] {
	h := Helper()
	h.Run = func(ctx context.Context, rt *app.Runtime, c *Config) error { return run(ctx, rt, c, docs) }
	return h
}

// DocumentsOnStdout reports whether args and env (as the command gets them)
// select --output stdout.
func DocumentsOnStdout(args, env []string) bool {
	c, _, err := app.ParseConfig(Helper(), args, env)
	return err == nil && c.Output == "stdout"
}

// Run follows the files and ships them until rt.Stopping closes; then it
// ships what was read (up to the drain deadline) and saves the checkpoint.
func Run(ctx context.Context, rt *app.Runtime, c *Config) error { return run(ctx, rt, c, nil) }

func run(ctx context.Context, rt *app.Runtime, c *Config, docs io.Writer) error {
	rules, err := buildRules(c)
	if err != nil {
		return fmt.Errorf("%w: %v", app.ErrConfig, err)
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return fmt.Errorf("%w: timezone %q: %v", app.ErrConfig, c.Timezone, err)
	}
	tsl, err := layouts(c.TSLayouts)
	if err != nil {
		return fmt.Errorf("%w: timestamp-layout: %v", app.ErrConfig, err)
	}
	host := c.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	var static [][2]string
	for _, s := range c.Static {
		k, v, _ := strings.Cut(s, "=")
		static = append(static, [2]string{k, v})
	}
	m := pipeline.NewMetrics(rt.Registry, "sidecarkit_adapter_")
	retry := backoff.Policy{Initial: c.RetryInitial, Max: c.RetryMax, Multiplier: 2, Jitter: 0.5}

	store, err := checkpoint.Open(c.Checkpoint)
	if err != nil {
		// a damaged checkpoint must not stop shipping: set it aside and
		// read from the head (documents may be sent again; their _id makes
		// that an overwrite)
		aside := c.Checkpoint + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		rt.Log.Error("checkpoint unreadable; moving it aside and starting from the head of every file", "err", err, "moved_to", aside)
		if rerr := os.Rename(c.Checkpoint, aside); rerr != nil {
			return fmt.Errorf("checkpoint: %v; and cannot move it aside: %w", err, rerr)
		}
		if store, err = checkpoint.Open(c.Checkpoint); err != nil {
			return err
		}
	}
	if c.Checkpoint != "" {
		if err := os.MkdirAll(dirOf(c.Checkpoint), 0o755); err != nil {
			return fmt.Errorf("checkpoint directory: %w", err)
		}
	}

	var sink pipeline.Sink
	senders := c.Senders
	switch c.Output {
	case "elasticsearch":
		es, err := newES(c, rt, m, retry)
		if err != nil {
			return fmt.Errorf("%w: %v", app.ErrConfig, err)
		}
		sink = es
	case "stdout":
		if docs == nil {
			docs = rt.Stdout
		}
		w := output.Stdout(docs)
		w.Sent = m.Sent
		sink = w
		senders = 1 // batches in order, one write at a time
	case "file":
		f, err := output.File(c.OutputFile, store.Output())
		if err != nil {
			return err
		}
		f.Sent = m.Sent
		sink = f
		senders = 1 // in order: the committed end of the file follows the positions
	default:
		sink = output.Discard{Sent: m.Sent}
	}

	ready := rt.Health.NewFlag("tailing")
	p := pipeline.New(pipeline.Config{
		Rules:            rules,
		MultilineTimeout: c.MLTimeout,
		Encoder: normalize.Options{Location: loc, DefaultLevel: c.DefaultLevel, Host: host,
			Pod: c.Pod, Namespace: c.Namespace, Container: c.Container, Static: static},
		Index: c.ESIndex, DataStream: c.ESStream,
		BatchDocs: c.BatchDocs, BatchBytes: c.BatchBytes, FlushInterval: c.FlushInterval,
		QueueBatches: c.QueueBatches, Senders: senders, Retry: retry, MaxLineBytes: c.MaxLineBytes,
		Layouts: tsl,
	}, sink, store, m, rt.Log)
	tcfg := tail.Config{
		Include: c.Paths, Exclude: c.Exclude, ReadFromHead: c.ReadFrom == "head",
		PollInterval: c.PollInterval, ScanInterval: c.ScanInterval, RotateWait: c.RotateWait,
		MaxLineBytes: c.MaxLineBytes, Watch: c.Fsnotify, MaxOpenFiles: c.MaxOpenFiles,
	}
	rt.Log.Info("adapter: shipping", "paths", strings.Join(c.Paths, ","), "output", c.Output, "parser", c.Parser, "checkpoint", c.Checkpoint)
	err = p.Run(ctx, rt.Stopping(), tcfg, func() { ready.Set(nil) })
	if err != nil && ctx.Err() != nil {
		rt.Log.Warn("drain deadline reached; what was not acknowledged will be read again at the next start")
		return nil
	}
	return err
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}

func newES(c *Config, rt *app.Runtime, m *pipeline.Metrics, retry backoff.Policy) (*bulk.ES, error) {
	hdr, err := parseHeaders(c.ESHeaders)
	if err != nil {
		return nil, err
	}
	user, pass := c.ESUser, c.ESPassword
	var urls []string
	for _, s := range c.ESURLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("es-url %q: %v", redact(s), err)
		}
		if u.User != nil { // credentials in the URL: use them, never log them
			if user == "" {
				user = u.User.Username()
				pass, _ = u.User.Password()
			}
			u.User = nil
		}
		urls = append(urls, strings.TrimRight(u.String(), "/"))
	}
	return bulk.NewES(bulk.Config{
		URLs: urls, Username: user, Password: pass, APIKey: c.ESAPIKey, Headers: hdr, Gzip: c.ESGzip,
		CAFile: c.ESCAFile, CertFile: c.ESCertFile, KeyFile: c.ESKeyFile, Insecure: c.ESInsecure,
		Timeout: c.ESTimeout, DeadLetter: c.DeadLetter, Backoff: retry,
	}, rt.Log, m.Bulk())
}

func buildRules(c *Config) ([]pipeline.Rule, error) {
	var ml *parse.Multiline
	if c.Multiline != "" || c.MLStart != "" || c.MLContinue != "" {
		preset := c.Multiline
		if preset == "custom" {
			preset = ""
		}
		var err error
		if ml, err = parse.NewMultiline(preset, c.MLStart, c.MLContinue, c.MLMaxLines, c.MaxLineBytes); err != nil {
			return nil, err
		}
	}
	mk := func(glob, name string) (pipeline.Rule, error) {
		p, err := parse.New(name, c.ParserRegex)
		if err != nil {
			return pipeline.Rule{}, err
		}
		return pipeline.Rule{Glob: glob, Parser: p, CRI: name == "cri", Multiline: ml}, nil
	}
	var rules []pipeline.Rule
	for _, r := range c.Parsers {
		g, name, _ := strings.Cut(r, "=")
		rule, err := mk(g, name)
		if err != nil {
			return nil, fmt.Errorf("parsers %q: %v", r, err)
		}
		rules = append(rules, rule)
	}
	def, err := mk("", c.Parser)
	if err != nil {
		return nil, fmt.Errorf("parser %q: %v", c.Parser, err)
	}
	return append(rules, def), nil
}
