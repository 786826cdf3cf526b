package ambassador

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sidecarkit/sidecarkit/ambassador/apiproxy"
	"github.com/sidecarkit/sidecarkit/ambassador/auth"
	"github.com/sidecarkit/sidecarkit/ambassador/dest"
	"github.com/sidecarkit/sidecarkit/ambassador/lease"
	"github.com/sidecarkit/sidecarkit/ambassador/secrets"
	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
	"github.com/sidecarkit/sidecarkit/shared/notify"
)

// Helper is the ambassador for app.Main.
func Helper() app.Helper[Config] {
	return app.Helper[Config]{
		Name:      "ambassador",
		AdminAddr: ":15100",
		Bind:      Bind,
		Validate:  Validate,
		Run:       Run,
	}
}

func (c *Config) method() auth.Method {
	mount := func(def string) string {
		if c.AuthMount != "" {
			return c.AuthMount
		}
		return def
	}
	switch c.AuthMethod {
	case "kubernetes":
		return &auth.Kubernetes{Mount: mount("kubernetes"), Role: c.K8sRole, JWTFile: c.K8sJWTFile}
	case "approle":
		return &auth.AppRole{Mount: mount("approle"), RoleIDFile: c.RoleIDFile, SecretIDFile: c.SecretIDFile, RemoveSecretID: c.RemoveSecretIDFile}
	default:
		return &auth.Token{File: c.TokenFile, Value: c.Token}
	}
}

// Run is the ambassador: log in, render the secrets and keep them fresh,
// serve the API proxy, until told to stop.
func Run(ctx context.Context, rt *app.Runtime, c *Config) error {
	// First of all: not ready until every file is rendered. (The admin
	// server already answers; until a check exists it would say ready.)
	rendered := rt.Health.NewFlag("secrets-rendered")
	log := rt.Log
	for _, o := range c.Outputs {
		if err := o.File.Check(); err != nil {
			return fmt.Errorf("%w: %v", app.ErrConfig, err)
		}
	}
	if c.TokenSink != "" {
		if err := (dest.File{Path: c.TokenSink, Tmpfs: c.RequireTmpfs}).Check(); err != nil {
			return fmt.Errorf("%w: token-sink: %v", app.ErrConfig, err)
		}
	}
	client, err := auth.NewClient(auth.Conn{
		Addr: c.VaultAddr, CACert: c.CACert, CAPath: c.CAPath, ClientCert: c.ClientCert, ClientKey: c.ClientKey,
		ServerName: c.TLSServerName, Insecure: c.TLSSkipVerify, Namespace: c.Namespace, Timeout: c.VaultTimeout,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", app.ErrConfig, err)
	}
	defer client.CloneConfig().HttpClient.CloseIdleConnections() // leave nothing behind
	retry := backoff.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.3}
	mgr := &auth.Manager{
		Client: client, Method: c.method(), Log: log, Backoff: retry, FailFast: c.ExitAfterRender,
		Increment: c.TokenIncrement,
		Sink:      dest.File{Path: c.TokenSink, Mode: 0o400, UID: c.FileUID, GID: c.FileGID, Tmpfs: c.RequireTmpfs},
	}
	mgr.Register(rt.Registry)
	store := secrets.NewStore(&secrets.Vault{Client: client}, lease.Policy{Refresh: c.StaticRefresh}, retry, log, rt.Registry)
	notifier := notify.New(c.Notify.Target(), c.Notify, log, rt.Registry, "sidecarkit_ambassador_")
	runner := &secrets.Runner{
		Outputs: c.Outputs, Store: store, Notify: notifier, Log: log,
		Rendered: func() { rendered.Set(nil) },
		FailFast: c.ExitAfterRender, Once: c.ExitAfterRender,
	}
	runner.Register(rt.Registry)
	rt.Health.AddCheck("files-current", runner.Check)

	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopWork()

	// The API proxy: listening from the start (requests wait for nothing; a
	// request before the first login simply carries no token).
	var srv *http.Server
	if c.ProxyAddr != "" && !c.ExitAfterRender {
		up, _ := url.Parse(c.VaultAddr)
		tr := client.CloneConfig().HttpClient.Transport
		if ht, ok := tr.(*http.Transport); ok {
			ht = ht.Clone() // same TLS settings, but its own pool sized for an app's traffic
			ht.MaxIdleConnsPerHost = 64
			tr = ht
		}
		if ct, ok := tr.(interface{ CloseIdleConnections() }); ok {
			defer ct.CloseIdleConnections()
		}
		px := &apiproxy.Proxy{
			Upstream: up, Transport: tr, Token: mgr.Token,
			Mode: apiproxy.TokenMode(c.ProxyToken), Namespace: c.Namespace, Timeout: c.ProxyTimeout, Log: log,
		}
		px.Register(rt.Registry)
		ln, err := net.Listen("tcp", c.ProxyAddr)
		if err != nil {
			return fmt.Errorf("api proxy: listen %s: %w", c.ProxyAddr, err)
		}
		srv = &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(ln) }()
		log.Info("api proxy listening", "addr", ln.Addr().String(), "vault", c.VaultAddr, "auto_auth_token", c.ProxyToken)
	}

	mgrErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); mgrErr <- mgr.Run(work) }()
	select {
	case <-mgr.Have():
	case err := <-mgrErr:
		shutdownProxy(srv, rt.Common.DrainTimeout)
		if errors.Is(err, context.Canceled) {
			if c.ExitAfterRender {
				return errInitStopped(runner, "before logging in to Vault")
			}
			return nil
		}
		return err
	case <-rt.Stopping():
		shutdownProxy(srv, rt.Common.DrainTimeout)
		if c.ExitAfterRender {
			// Exit 0 means "every file written": an init container stopped
			// before that must not let the app start.
			return errInitStopped(runner, "before logging in to Vault")
		}
		return nil
	}

	store.Start(work, mgr.Denied)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-work.Done():
				return
			case <-mgr.Changed():
				store.TokenChanged()
			}
		}
	}()
	go func() { defer wg.Done(); notifier.Run(work) }()

	if c.ExitAfterRender {
		rerr := make(chan error, 1)
		go func() { rerr <- runner.Run(work) }()
		select {
		case err := <-rerr:
			if err != nil {
				return err
			}
			if work.Err() != nil { // the runner stopped because the run was cancelled
				return errInitStopped(runner, "before every secret was rendered")
			}
			log.Info("init mode: every secret rendered; exiting")
			return nil
		case err := <-mgrErr:
			if err == nil || errors.Is(err, context.Canceled) {
				return errInitStopped(runner, "before every secret was rendered")
			}
			return err
		case <-rt.Stopping():
			return errInitStopped(runner, "before every secret was rendered")
		}
	}

	wg.Add(1)
	go func() { defer wg.Done(); runner.Run(work) }()
	select {
	case <-rt.Stopping():
	case <-ctx.Done():
	}
	shutdownProxy(srv, rt.Common.DrainTimeout)
	if c.RevokeOnShutdown {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := store.Revoke(rctx); err != nil {
			log.Warn("revoke leases on shutdown", "err", err)
		}
		if err := mgr.Revoke(rctx); err != nil {
			log.Warn("revoke token on shutdown", "err", err)
		}
		cancel()
	}
	stopWork()
	store.Wait()
	return nil
}

func shutdownProxy(srv *http.Server, d time.Duration) {
	if srv == nil {
		return
	}
	if d <= 0 {
		d = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		srv.Close()
	}
}

// errInitStopped is init mode's error when it was stopped (SIGTERM, the
// startup deadline) before every file was written: it names what was
// written and what was not.
func errInitStopped(r *secrets.Runner, when string) error {
	written, not := r.Written()
	msg := fmt.Sprintf("init mode: stopped %s; not written: %s", when, strings.Join(not, ", "))
	if len(written) > 0 {
		msg += "; written: " + strings.Join(written, ", ")
	}
	return errors.New(msg)
}
