package server

import (
	"context"
	"path/filepath"
	"reflect"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/config"

	"github.com/fsnotify/fsnotify"
)

// watch reloads the configuration when its file changes. It watches the
// file's directory, so editors' rename-into-place and Kubernetes'
// symlink-swapped ConfigMap volumes are seen, and reacts only to events
// on the file or on what it resolves to (other files there are ignored). It returns a stop function.
func (s *Server) watch(ctx context.Context) func() {
	dirs := append([]string(nil), s.opts.WatchDirs...)
	if s.opts.ConfigPath != "" {
		dirs = append(dirs, filepath.Dir(s.opts.ConfigPath))
	}
	if len(dirs) == 0 || s.opts.Reload == nil {
		return func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("config reload disabled: cannot watch", "path", s.opts.ConfigPath, "err", err)
		return func() {}
	}
	for _, dir := range dirs {
		if err := w.Add(dir); err != nil {
			w.Close()
			s.log.Warn("config reload disabled: cannot watch", "dir", dir, "err", err)
			return func() {}
		}
	}
	// Only the file itself counts: its name, or (ConfigMap volumes, other
	// symlinks) the file it resolves to changing — not any file in the
	// directory.
	target := func() string {
		t, err := filepath.EvalSymlinks(s.opts.ConfigPath)
		if err != nil {
			return ""
		}
		return t
	}
	name := filepath.Clean(s.opts.ConfigPath)
	dir := filepath.Dir(s.opts.ConfigPath)
	last := ""
	if s.opts.ConfigPath != "" {
		last = target()
	}
	if last != "" && filepath.Dir(last) != dir {
		// A symlink into another directory: watch that one too.
		if err := w.Add(filepath.Dir(last)); err != nil {
			s.log.Warn("config reload: cannot watch the symlink target's directory", "dir", filepath.Dir(last), "err", err)
		}
	}
	relevant := func(ev fsnotify.Event) bool {
		for _, d := range s.opts.WatchDirs { // --istio-config: any file there counts
			if filepath.Clean(filepath.Dir(ev.Name)) == filepath.Clean(d) {
				return true
			}
		}
		if s.opts.ConfigPath == "" {
			return false
		}
		if filepath.Clean(ev.Name) == name || last != "" && filepath.Clean(ev.Name) == last {
			return true
		}
		if t := target(); t != last {
			last = t
			return true
		}
		return false
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
				if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 && relevant(ev) {
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
// (unchanged ones are kept with their pools), middleware and per-listener
// targets change for new requests and connections; requests in flight
// finish on what they started with. Listeners are added, removed (drained)
// and moved to a new address (the new one listens before the old one
// drains); a listener that keeps its address but changes direction,
// protocol, transparency or mTLS needs a restart (logged). A configuration
// with problems is refused and logged, and the running one stays. It
// reports whether the new configuration was applied.
func (s *Server) Reload() bool {
	nc, err := s.opts.Reload()
	if err != nil {
		s.metrics.Reloads.WithLabelValues("rejected").Inc()
		s.log.Error("config reload rejected; the running configuration stays", "path", s.opts.ConfigPath, "err", err)
		return false
	}
	snap, err := s.build(nc)
	if err != nil {
		s.metrics.Reloads.WithLabelValues("rejected").Inc()
		s.log.Error("config reload rejected; the running configuration stays", "path", s.opts.ConfigPath, "err", err)
		return false
	}
	s.cfg.Store(nc)
	s.state.Store(snap)
	s.applyListeners(nc)
	s.metrics.Reloads.WithLabelValues("ok").Inc()
	s.metrics.ConfigTimestamp.SetToCurrentTime()
	s.log.Info("config reloaded", "path", s.opts.ConfigPath, "routes", len(nc.Routes), "clusters", len(snap.Clusters))
	return true
}

func sameSocket(a, b config.Listener) bool {
	return a.Address == b.Address && a.Direction == b.Direction && a.Transparent == b.Transparent &&
		a.Protocol == b.Protocol && reflect.DeepEqual(a.MTLS, b.MTLS)
}

// applyListeners reconciles the serving listeners with nc's.
func (s *Server) applyListeners(nc *config.Config) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.stopping {
		return
	}
	cur := map[string]*runningListener{}
	for _, rl := range s.listeners {
		cur[rl.cfg.Name] = rl
	}
	var keep []*runningListener
	seen := map[string]bool{}
	for _, lc := range nc.Effective() {
		seen[lc.Name] = true
		old := cur[lc.Name]
		if old != nil && sameSocket(old.cfg, lc) {
			keep = append(keep, old)
			continue
		}
		if old != nil && old.cfg.Address == lc.Address {
			s.log.Warn("config reload: listener keeps its address but changes direction/protocol/transparent/mtls; that takes a restart", "listener", lc.Name)
			keep = append(keep, old)
			continue
		}
		rl, err := s.listen(nc, lc)
		if err != nil {
			s.log.Error("config reload: cannot open listener; keeping the old one", "listener", lc.Name, "err", err)
			if old != nil {
				keep = append(keep, old)
			}
			continue
		}
		go rl.serve()
		s.log.Info("listening", "listener", lc.Name, "addr", rl.ln.Addr().String())
		keep = append(keep, rl)
		if old != nil {
			s.retire(old)
		}
	}
	for name, old := range cur {
		if !seen[name] {
			s.retire(old)
		}
	}
	s.listeners = keep
}

// retire drains a listener a reload removed (lmu held).
func (s *Server) retire(rl *runningListener) {
	s.retired = append(s.retired, rl)
	s.log.Info("config reload: draining listener", "listener", rl.cfg.Name, "addr", rl.ln.Addr().String())
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.grace())
		defer cancel()
		rl.shutdown(ctx)
	}()
}
