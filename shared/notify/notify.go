// Package notify tells the app that something it reads was republished: by a
// signal to a process found by name or pidfile (shared PID namespace), an HTTP
// request, or a command. Triggers are debounced; each notification has a
// timeout and is retried with backoff.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/shared/backoff"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// Target is one way of telling the app.
type Target interface {
	Notify(ctx context.Context) error
	String() string
}

// Signal sends Sig to every process whose name (comm or argv[0] base name) is
// Process, or to the pid in PIDFile.
type Signal struct {
	Sig      syscall.Signal
	Process  string
	PIDFile  string
	ProcRoot string // "/proc" when empty
}

func (s Signal) String() string {
	if s.PIDFile != "" {
		return fmt.Sprintf("signal %s to pid in %s", sigName(s.Sig), s.PIDFile)
	}
	return fmt.Sprintf("signal %s to process %q", sigName(s.Sig), s.Process)
}

// Notify finds the processes and signals them; no process found is an error.
func (s Signal) Notify(ctx context.Context) error {
	pids, err := s.find()
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, s.Sig); err != nil {
			errs = append(errs, fmt.Errorf("signal pid %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

func (s Signal) find() ([]int, error) {
	if s.PIDFile != "" {
		b, err := os.ReadFile(s.PIDFile)
		if err != nil {
			return nil, fmt.Errorf("read pidfile: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("pidfile %s: %q is not a pid", s.PIDFile, strings.TrimSpace(string(b)))
		}
		return []int{pid}, nil
	}
	root := s.ProcRoot
	if root == "" {
		root = "/proc"
	}
	pids, err := FindProcess(root, s.Process)
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process named %q (is the PID namespace shared with the app?)", s.Process)
	}
	return pids, nil
}

// FindProcess lists pids under procRoot whose comm or argv[0] base name is
// name, excluding this process.
func FindProcess(procRoot, name string) ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil && strings.TrimSpace(string(comm)) == name {
			pids = append(pids, pid)
			continue
		}
		if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
			argv0, _, _ := bytes.Cut(cmd, []byte{0})
			if len(argv0) > 0 && filepath.Base(string(argv0)) == name {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// HTTP sends Method (POST by default) to URL and wants WantStatus (any 2xx
// when 0).
type HTTP struct {
	URL        string
	Method     string
	WantStatus int
	Client     *http.Client
}

func (h HTTP) String() string { return fmt.Sprintf("%s %s", h.method(), redactURL(h.URL)) }

func (h HTTP) method() string {
	if h.Method == "" {
		return http.MethodPost
	}
	return h.Method
}

// Notify makes the request once.
func (h HTTP) Notify(ctx context.Context) error {
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, h.method(), h.URL, nil)
	if err != nil {
		return fmt.Errorf("notify %s: %w", redactURL(h.URL), err)
	}
	req.Header.Set("User-Agent", "sidecarkit-notify")
	resp, err := c.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("notify %s: %w", redactURL(h.URL), err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ok := resp.StatusCode/100 == 2
	if h.WantStatus != 0 {
		ok = resp.StatusCode == h.WantStatus
	}
	if !ok {
		return fmt.Errorf("notify %s: got HTTP %d", redactURL(h.URL), resp.StatusCode)
	}
	return nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// Command runs Argv; a non-zero exit is an error.
type Command struct {
	Argv []string
}

func (c Command) String() string { return "command " + c.Argv[0] }

// Notify runs the command once, killing it when ctx ends.
func (c Command) Notify(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 200 {
			tail = tail[len(tail)-200:]
		}
		return fmt.Errorf("notify command %s: %w (output: %q)", c.Argv[0], err, tail)
	}
	return nil
}

// Options are the notify flags every publishing helper shares.
type Options struct {
	Signal   string
	Process  string
	PIDFile  string
	URL      string
	Status   int
	Command  string
	Timeout  time.Duration
	Retries  int
	Debounce time.Duration
	Splay    time.Duration
}

// Defaults are the notify-* defaults a helper gets from Bind.
func Defaults() Options {
	return Options{Signal: "HUP", Timeout: 10 * time.Second, Retries: 5, Debounce: 500 * time.Millisecond}
}

// Bind registers the notify-* options with the shared Defaults.
func (o *Options) Bind(l *config.Loader) { o.BindDefaults(l, Defaults()) }

// BindDefaults registers the notify-* options with a helper's own defaults
// (e.g. no debounce for a helper that triggers once per render pass).
func (o *Options) BindDefaults(l *config.Loader, d Options) {
	l.String(&o.Signal, "notify-signal", d.Signal, "signal to send with --notify-process or --notify-pidfile")
	l.String(&o.Process, "notify-process", d.Process, "signal every process with this name (needs a shared PID namespace)")
	l.String(&o.PIDFile, "notify-pidfile", d.PIDFile, "signal the pid in this file")
	l.String(&o.URL, "notify-url", d.URL, "POST this URL after a change")
	l.Int(&o.Status, "notify-status", d.Status, "HTTP status the URL must answer (0: any 2xx)")
	l.String(&o.Command, "notify-command", d.Command, "run this command (split on spaces) after a change")
	l.Duration(&o.Timeout, "notify-timeout", d.Timeout, "timeout of one notification attempt")
	l.Int(&o.Retries, "notify-retries", d.Retries, "retries after a failed notification")
	l.Duration(&o.Debounce, "notify-debounce", d.Debounce, "wait for this long without changes before notifying")
	l.Duration(&o.Splay, "notify-splay", d.Splay, "random extra delay up to this long (spreads reloads across pods)")
}

// Validate adds every problem to p.
func (o *Options) Validate(p *config.Problems) {
	n := 0
	for _, s := range []string{o.Process, o.PIDFile, o.URL, o.Command} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		p.Addf("notify: set only one of notify-process, notify-pidfile, notify-url, notify-command")
	}
	if o.Process != "" || o.PIDFile != "" {
		if _, err := ParseSignal(o.Signal); err != nil {
			p.Add("notify-signal", o.Signal, "%v", err)
		}
	}
	if o.URL != "" {
		if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Add("notify-url", redactURL(o.URL), "want an http:// or https:// URL")
		}
	}
	if o.Status != 0 && (o.Status < 100 || o.Status > 599) {
		p.Add("notify-status", o.Status, "not an HTTP status")
	}
	if o.Retries < 0 {
		p.Add("notify-retries", o.Retries, "must not be negative")
	}
	for _, d := range []struct {
		k string
		v time.Duration
	}{{"notify-timeout", o.Timeout}, {"notify-debounce", o.Debounce}, {"notify-splay", o.Splay}} {
		if d.v < 0 {
			p.Add(d.k, d.v, "must not be negative")
		}
	}
}

// Target returns the configured target, or nil when none is set.
func (o *Options) Target() Target {
	switch {
	case o.Process != "" || o.PIDFile != "":
		sig, _ := ParseSignal(o.Signal)
		return Signal{Sig: sig, Process: o.Process, PIDFile: o.PIDFile}
	case o.URL != "":
		return HTTP{URL: o.URL, WantStatus: o.Status}
	case o.Command != "":
		return Command{Argv: strings.Fields(o.Command)}
	}
	return nil
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "TERM": syscall.SIGTERM,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "KILL": syscall.SIGKILL, "WINCH": syscall.SIGWINCH,
}

// ParseSignal accepts HUP, SIGHUP, hup or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	u := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if sig, ok := signals[u]; ok {
		return sig, nil
	}
	if n, err := strconv.Atoi(u); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal (want e.g. HUP, USR1, TERM)")
}

func sigName(s syscall.Signal) string {
	for k, v := range signals {
		if v == s {
			return "SIG" + k
		}
	}
	return strconv.Itoa(int(s))
}

// Notifier debounces triggers and delivers notifications with retries.
type Notifier struct {
	target  Target
	opts    Options
	log     *slog.Logger
	trigger chan struct{}
	sent    *prometheus.CounterVec
	policy  backoff.Policy
}

// New returns a notifier for t (nil: Trigger does nothing). Metrics are
// registered on reg as <prefix>notifications_total{result}.
func New(t Target, o Options, log *slog.Logger, reg prometheus.Registerer, prefix string) *Notifier {
	n := &Notifier{
		target: t, opts: o, log: log, trigger: make(chan struct{}, 1),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "notifications_total", Help: "App notifications by result (ok, error).",
		}, []string{"result"}),
		policy: backoff.Policy{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2},
	}
	// Both series exist from the start, so a dashboard shows 0, not nothing.
	n.sent.WithLabelValues("ok")
	n.sent.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(n.sent)
	}
	return n
}

// Trigger asks for a notification; triggers within the debounce window merge.
func (n *Notifier) Trigger() {
	if n == nil || n.target == nil {
		return
	}
	select {
	case n.trigger <- struct{}{}:
	default:
	}
}

// Run delivers notifications until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	if n == nil || n.target == nil {
		<-ctx.Done()
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.trigger:
		}
		// Debounce: wait until no trigger arrived for Debounce.
		for quiet := false; !quiet; {
			if n.opts.Debounce <= 0 {
				break
			}
			t := time.NewTimer(n.opts.Debounce)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-n.trigger:
				t.Stop()
			case <-t.C:
				quiet = true
			}
		}
		if n.opts.Splay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(rand.N(n.opts.Splay)):
			}
		}
		n.deliver(ctx)
	}
}

// deliver notifies once, with retries.
func (n *Notifier) deliver(ctx context.Context) error {
	var err error
	for attempt := 0; attempt <= n.opts.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(n.policy.Delay(attempt-1, nil)):
			}
		}
		actx, cancel := context.WithTimeout(ctx, n.timeout())
		err = n.target.Notify(actx)
		cancel()
		if err == nil {
			n.sent.WithLabelValues("ok").Inc()
			n.log.Info("notified app", "target", n.target.String(), "attempt", attempt+1)
			return nil
		}
		n.log.Warn("notify app failed", "target", n.target.String(), "attempt", attempt+1, "err", err)
	}
	n.sent.WithLabelValues("error").Inc()
	return err
}

// NotifyNow delivers one notification at once (with retries), bypassing the
// debounce; for one-shot modes.
func (n *Notifier) NotifyNow(ctx context.Context) error {
	if n == nil || n.target == nil {
		return nil
	}
	return n.deliver(ctx)
}

func (n *Notifier) timeout() time.Duration {
	if n.opts.Timeout <= 0 {
		return 10 * time.Second
	}
	return n.opts.Timeout
}
