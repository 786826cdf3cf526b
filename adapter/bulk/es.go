package bulk

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Config says where and how to send.
type Config struct {
	URLs     []string // base URLs; the request goes to URL + "/_bulk"
	Username string
	Password string
	APIKey   string // sent as "Authorization: ApiKey <key>"
	Headers  http.Header
	Gzip     bool
	CAFile   string
	CertFile string
	KeyFile  string
	Insecure bool // skip TLS verification
	Timeout  time.Duration
	// DeadLetter is the file rejected documents are appended to.
	DeadLetter string
	Backoff    backoff.Policy
}

// Metrics are the sink's counters; nil fields are not counted.
type Metrics struct {
	Sent       prometheus.Counter
	Retried    prometheus.Counter
	Dead       prometheus.Counter
	Bytes      prometheus.Counter
	Latency    prometheus.Observer
	ReqErrors  *prometheus.CounterVec // label "reason"
	Requests   prometheus.Counter
	Unacked    prometheus.Gauge
	LastFailed func(failed bool)
}

// ES is the Elasticsearch bulk sink.
type ES struct {
	cfg    Config
	client *elastic.Client
	log    *slog.Logger
	m      Metrics
	rnd    *rand.Rand
	deadMu sync.Mutex
	dead   *os.File
	bufs   sync.Pool // *sendBufs: one per concurrent Write
	hdr    http.Header
}

// sendBufs are one sender's reusable buffers.
type sendBufs struct {
	scratch []byte
	gz      *gzip.Writer
	gzbuf   bytes.Buffer
}

// NewES builds the client. It does not contact the server.
func NewES(cfg Config, log *slog.Logger, m Metrics) (*ES, error) {
	hc, err := httpClient(cfg)
	if err != nil {
		return nil, err
	}
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(cfg.URLs...),
		elastic.SetHttpClient(hc),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		elastic.SetGzip(false), // we compress ourselves, once per batch, with a reused writer
	}
	if cfg.Username != "" || cfg.Password != "" {
		opts = append(opts, elastic.SetBasicAuth(cfg.Username, cfg.Password))
	}
	client, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client: %w", err)
	}
	hdr := http.Header{}
	for k, vs := range cfg.Headers {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	if cfg.APIKey != "" {
		hdr.Set("Authorization", "ApiKey "+cfg.APIKey)
	}
	if cfg.Gzip {
		hdr.Set("Content-Encoding", "gzip")
	}
	e := &ES{cfg: cfg, client: client, log: log, m: m, hdr: hdr, rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	e.bufs.New = func() any {
		sb := &sendBufs{}
		if cfg.Gzip {
			sb.gz, _ = gzip.NewWriterLevel(&sb.gzbuf, gzip.BestSpeed)
		}
		return sb
	}
	return e, nil
}

func httpClient(cfg Config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	tc := &tls.Config{InsecureSkipVerify: cfg.Insecure} //nolint:gosec // opt-in flag
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s / key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = tc
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// Close closes the dead-letter file.
func (e *ES) Close() error {
	e.deadMu.Lock()
	defer e.deadMu.Unlock()
	if e.dead != nil {
		return e.dead.Close()
	}
	return nil
}

// Write sends b and returns once every item is stored or dead-lettered. It
// only returns an error when ctx ends first (the batch is then not done).
// It is safe for concurrent use.
func (e *ES) Write(ctx context.Context, b *Batch) error {
	idx := make([]int, len(b.Items))
	for i := range idx {
		idx[i] = i
	}
	sb := e.bufs.Get().(*sendBufs)
	defer e.bufs.Put(sb)
	return e.send(ctx, sb, b, idx)
}

// send delivers the items idx of b, retrying until each is done or dead.
func (e *ES) send(ctx context.Context, sb *sendBufs, b *Batch, idx []int) error {
	bo := backoff.Backoff{Policy: e.cfg.Backoff}
	for len(idx) > 0 {
		body := b.Buf
		if len(idx) != len(b.Items) {
			sb.scratch = sb.scratch[:0]
			for _, i := range idx {
				it := b.Items[i]
				sb.scratch = append(sb.scratch, b.Buf[it.Start:it.End]...)
			}
			body = sb.scratch
		}
		status, resp, err := e.post(ctx, sb, body)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var retry []int
		switch {
		case err == nil:
			allOK, items, perr := ParseResponse(resp, len(idx))
			if perr != nil {
				e.log.Warn("bulk: unreadable response; re-sending the batch", "err", perr)
				e.reqError("bad_response")
				retry = idx
				break
			}
			if allOK {
				e.count(e.m.Sent, len(idx))
				idx = nil
				continue
			}
			var dead []int
			var deadRes []ItemResult
			for j, r := range items {
				switch Classify(r.Status, r.ErrType) {
				case Done:
					e.count(e.m.Sent, 1)
				case Retry:
					retry = append(retry, idx[j])
				case Dead:
					dead = append(dead, idx[j])
					deadRes = append(deadRes, r)
				}
			}
			if len(dead) > 0 {
				if err := e.deadLetter(b, dead, deadRes); err != nil {
					// cannot set them aside: keep them (retrying) rather than lose them
					e.log.Error("bulk: cannot write dead-letter file; keeping the rejected documents and retrying", "file", e.cfg.DeadLetter, "err", err)
					retry = append(retry, dead...)
				}
			}
		case (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge) && len(idx) > 1:
			// the request as a whole was refused (too large, or one line
			// broke it): split it so a bad document only fails itself.
			e.log.Warn("bulk: request refused as a whole; splitting it", "status", status, "documents", len(idx))
			e.reqError("split_" + strconv.Itoa(status))
			h := len(idx) / 2
			first, second := append([]int(nil), idx[:h]...), append([]int(nil), idx[h:]...)
			if err := e.send(ctx, sb, b, first); err != nil {
				return err
			}
			if err := e.send(ctx, sb, b, second); err != nil {
				return err
			}
			return nil
		case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
			res := []ItemResult{{Status: status, ErrType: "request_refused", Error: errorJSON(err)}}
			if derr := e.deadLetter(b, idx, res); derr != nil {
				e.log.Error("bulk: cannot write dead-letter file; retrying", "file", e.cfg.DeadLetter, "err", derr)
				retry = idx
			}
		default:
			reason := "network"
			if status != 0 {
				reason = "http_" + strconv.Itoa(status)
			}
			e.reqError(reason)
			e.log.Warn("bulk: request failed; will retry", "status", status, "err", err, "documents", len(idx), "attempt", bo.Attempt()+1)
			retry = idx
		}
		idx = retry
		if len(idx) == 0 {
			return nil
		}
		e.count(e.m.Retried, len(idx))
		d := bo.Next()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// post sends one bulk body; status is the HTTP status (0 on network errors).
func (e *ES) post(ctx context.Context, sb *sendBufs, body []byte) (status int, resp []byte, err error) {
	if sb.gz != nil {
		sb.gzbuf.Reset()
		sb.gz.Reset(&sb.gzbuf)
		sb.gz.Write(body)
		sb.gz.Close()
		body = sb.gzbuf.Bytes()
	}
	if e.m.Requests != nil {
		e.m.Requests.Inc()
	}
	start := time.Now()
	// The body is passed as a string that aliases our buffer (no copy of a
	// multi-megabyte batch); the buffer is not touched until this returns.
	var s string
	if len(body) > 0 {
		s = unsafe.String(&body[0], len(body))
	}
	r, err := e.client.PerformRequest(ctx, elastic.PerformRequestOptions{
		Method: "POST", Path: "/_bulk", Body: s, ContentType: "application/x-ndjson", Headers: e.hdr,
	})
	if e.m.Latency != nil {
		e.m.Latency.Observe(time.Since(start).Seconds())
	}
	failed := err != nil
	if e.m.LastFailed != nil {
		e.m.LastFailed(failed)
	}
	if err != nil {
		var ee *elastic.Error
		if errors.As(err, &ee) {
			return ee.Status, nil, err
		}
		return 0, nil, err
	}
	if e.m.Bytes != nil {
		e.m.Bytes.Add(float64(len(body)))
	}
	return r.StatusCode, r.Body, nil
}

func (e *ES) count(c prometheus.Counter, n int) {
	if c != nil {
		c.Add(float64(n))
	}
}

func (e *ES) reqError(reason string) {
	if e.m.ReqErrors != nil {
		e.m.ReqErrors.WithLabelValues(reason).Inc()
	}
}

func errorJSON(err error) []byte {
	var ee *elastic.Error
	if errors.As(err, &ee) && ee.Details != nil {
		b, _ := jsonMarshal(ee.Details)
		return b
	}
	msg := "request refused"
	if err != nil {
		msg = err.Error()
	}
	b, _ := jsonMarshal(map[string]string{"reason": msg})
	return b
}
