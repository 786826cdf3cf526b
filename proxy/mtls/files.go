package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Files names the PEM files of a workload's credentials.
type Files struct {
	CertFile string `yaml:"cert_file"` // certificate chain, leaf first
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"` // trusted CA bundle for the peer
}

func (f Files) problems(at string) []error {
	var errs []error
	for _, x := range []struct{ k, v string }{{"cert_file", f.CertFile}, {"key_file", f.KeyFile}, {"ca_file", f.CAFile}} {
		if x.v == "" {
			errs = append(errs, fmt.Errorf("%s%s %q: a file is needed", at, x.k, x.v))
		}
	}
	return errs
}

// bundle is one consistent set of credentials.
type bundle struct {
	cert  *tls.Certificate
	roots *x509.CertPool
	id    Identity
}

func loadBundle(f Files) (*bundle, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load cert_file %s / key_file %s: %w", f.CertFile, f.KeyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse cert_file %s: %w", f.CertFile, err)
		}
	}
	ca, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", f.CAFile)
	}
	b := &bundle{cert: &cert, roots: pool}
	b.id, _ = IdentityOf(cert.Leaf)
	return b, nil
}

// reloader keeps the newest good bundle of some files, re-reading them when
// their directories change.
type reloader struct {
	files   Files
	log     *slog.Logger
	cur     atomic.Pointer[bundle]
	reloads atomic.Uint64
	w       *fsnotify.Watcher
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// debounce lets a multi-file update (cert, then key) land before reading.
const debounce = 100 * time.Millisecond

func newReloader(f Files, log *slog.Logger) (*reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := loadBundle(f)
	if err != nil {
		return nil, err
	}
	r := &reloader{files: f, log: log, done: make(chan struct{})}
	r.cur.Store(b)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch certificate files: %w", err)
	}
	dirs := map[string]bool{}
	for _, p := range []string{f.CertFile, f.KeyFile, f.CAFile} {
		d := filepath.Dir(p)
		if dirs[d] {
			continue
		}
		dirs[d] = true
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", d, err)
		}
	}
	r.w = w
	r.wg.Add(1)
	go r.watch()
	return r, nil
}

func (r *reloader) watch() {
	defer r.wg.Done()
	var timer *time.Timer
	var fire <-chan time.Time
	// A slow poll catches changes fsnotify cannot see (e.g. a remounted dir).
	poll := time.NewTicker(time.Minute)
	defer poll.Stop()
	for {
		select {
		case <-r.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case _, ok := <-r.w.Events:
			if !ok {
				return
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-r.w.Errors:
			if !ok {
				return
			}
			r.log.Warn("watching certificate files", "err", err)
		case <-fire:
			fire = nil
			r.reload()
		case <-poll.C:
			r.reload()
		}
	}
}

// reload reads the files again; a bad set is logged and the old one kept.
func (r *reloader) reload() {
	b, err := loadBundle(r.files)
	if err != nil {
		r.log.Error("certificate reload failed, keeping the previous certificate", "err", err)
		return
	}
	old := r.cur.Load()
	if old != nil && sameCert(old.cert, b.cert) && old.roots.Equal(b.roots) {
		return
	}
	r.cur.Store(b)
	r.reloads.Add(1)
	r.log.Info("certificate reloaded", "cert_file", r.files.CertFile, "identity", b.id.URI,
		"not_after", b.cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "serial", b.cert.Leaf.SerialNumber.String())
}

func sameCert(a, b *tls.Certificate) bool {
	if len(a.Certificate) != len(b.Certificate) {
		return false
	}
	for i := range a.Certificate {
		if string(a.Certificate[i]) != string(b.Certificate[i]) {
			return false
		}
	}
	return true
}

// Reloads counts successful reloads (for tests and metrics).
func (r *reloader) Reloads() uint64 { return r.reloads.Load() }

// NotAfter is when the current certificate expires (for an expiry gauge).
func (r *reloader) NotAfter() time.Time { return r.cur.Load().cert.Leaf.NotAfter }

// Identity is the SPIFFE identity of the current certificate.
func (r *reloader) Identity() Identity { return r.cur.Load().id }

// Close stops watching the files.
func (r *reloader) Close() error {
	r.once.Do(func() {
		close(r.done)
		r.w.Close()
		r.wg.Wait()
	})
	return nil
}

// verifyPeer checks a presented chain against the current roots.
func verifyPeer(rawCerts [][]byte, roots *x509.CertPool, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return nil, errors.New("peer presented no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, err
	}
	return certs[0], nil
}
