package server

import (
	"context"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch reloads the configuration when its file changes. It watches the
// file's directory, so editors' rename-into-place and Kubernetes'
// symlink-swapped ConfigMap volumes are seen. It returns a stop function.
func (s *Server) watch(ctx context.Context) func() {
	if s.opts.ConfigPath == "" || s.opts.Reload == nil {
		return func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("config reload disabled: cannot watch", "path", s.opts.ConfigPath, "err", err)
		return func() {}
	}
	dir := filepath.Dir(s.opts.ConfigPath)
	if err := w.Add(dir); err != nil {
		w.Close()
		s.log.Warn("config reload disabled: cannot watch", "dir", dir, "err", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var debounce <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
					debounce = time.After(200 * time.Millisecond)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Warn("config watch error", "err", err)
			case <-debounce:
				debounce = nil
				s.Reload()
			}
		}
	}()
	return func() { w.Close(); <-done }
}

// Reload loads the configuration again and applies it: routes, clusters
// (unchanged ones are kept with their pools) and per-listener targets change
// for new requests and connections; requests in flight finish on what they
// started with. A configuration with problems is refused and logged, and the
// running one stays. Listener addresses, directions and protocols need a
// restart. It reports whether the new configuration was applied.
func (s *Server) Reload() bool {
	nc, err := s.opts.Reload()
	if err != nil {
		s.metrics.Reloads.WithLabelValues("rejected").Inc()
		s.log.Error("config reload rejected; the running configuration stays", "path", s.opts.ConfigPath, "err", err)
		return false
	}
	cur := s.cfg.Load()
	old := map[string]any{}
	for _, l := range cur.Effective() {
		old[l.Name] = [5]any{l.Address, l.Direction, l.Transparent, l.Protocol, l.MTLS}
	}
	for _, l := range nc.Effective() {
		if o, ok := old[l.Name]; !ok || !reflect.DeepEqual(o, [5]any{l.Address, l.Direction, l.Transparent, l.Protocol, l.MTLS}) {
			s.log.Warn("config reload: listener added or its address/direction/protocol/mtls changed; that takes a restart", "listener", l.Name)
		}
	}
	snap, err := s.build(nc)
	if err != nil {
		s.metrics.Reloads.WithLabelValues("rejected").Inc()
		s.log.Error("config reload rejected; the running configuration stays", "path", s.opts.ConfigPath, "err", err)
		return false
	}
	s.cfg.Store(nc)
	s.state.Store(snap)
	s.metrics.Reloads.WithLabelValues("ok").Inc()
	s.metrics.ConfigTimestamp.SetToCurrentTime()
	s.log.Info("config reloaded", "path", s.opts.ConfigPath, "routes", len(nc.Routes), "clusters", len(snap.Clusters))
	return true
}
