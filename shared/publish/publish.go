// Package publish writes what another container reads so that a reader never
// sees a partial file or a mixed tree: a file is written to a temp file in the
// same directory, fsynced, chmod/chowned and renamed over the old one; a tree
// is written to a fresh version directory and published by swapping a symlink
// (as git-sync does). Unchanged content is not rewritten.
package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Options says how published files look.
type Options struct {
	Mode    fs.FileMode // file mode; 0 means 0644
	DirMode fs.FileMode // directory mode inside trees; 0 means 0755
	UID     int         // owner; -1 (or 0 with GID 0 and Chown false) leaves it
	GID     int
	Chown   bool // apply UID/GID
	// Retain keeps superseded tree versions this long after they were
	// written, so a reader that resolved the link a moment ago still finds its
	// files; 0 means 30s. The newest superseded version is always kept.
	Retain time.Duration
}

func (o Options) mode() fs.FileMode {
	if o.Mode == 0 {
		return 0o644
	}
	return o.Mode
}

func (o Options) dirMode() fs.FileMode {
	if o.DirMode == 0 {
		return 0o755
	}
	return o.DirMode
}

// File atomically replaces path with data. It reports changed=false, writing
// nothing, when path already holds data with the same mode.
func File(path string, data []byte, o Options) (changed bool, err error) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Mode().Perm() == o.mode().Perm() {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	if err := writeFileSync(dir, filepath.Base(path), data, o); err != nil {
		return false, fmt.Errorf("publish %s: %w", path, err)
	}
	return true, nil
}

// writeFileSync writes dir/name through a temp file, fsync and rename, then
// fsyncs dir.
func writeFileSync(dir, name string, data []byte, o Options) error {
	// The temp name does not derive from name: a 255-byte name (NAME_MAX)
	// must still get a temp file.
	tmp, err := os.CreateTemp(dir, ".publish-*.tmp")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if tmpName != "" {
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(o.mode()); err != nil {
		tmp.Close()
		return err
	}
	if o.Chown {
		if err := tmp.Chown(o.UID, o.GID); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		return err
	}
	tmpName = ""
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// Tree publishes files (relative slash paths → content) as the directory that
// the symlink link points to. The version directory lives beside the link in
// ".<link name>.versions/<content hash>"; the link is relative so the volume
// can be mounted anywhere. It reports changed=false when link already points
// at identical content. Superseded versions are removed once older than o.Retain (the newest
// superseded one is always kept).
func Tree(link string, files map[string][]byte, o Options) (changed bool, err error) {
	names := make([]string, 0, len(files))
	for name := range files {
		if err := CheckRelPath(name); err != nil {
			return false, fmt.Errorf("publish tree %s: %w", link, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "mode %o %o\n", o.mode(), o.dirMode())
	for _, n := range names {
		fmt.Fprintf(h, "%q %d\n", n, len(files[n]))
		h.Write(files[n])
	}
	version := hex.EncodeToString(h.Sum(nil))[:16]

	parent := filepath.Dir(link)
	base := filepath.Base(link)
	versionsRel := "." + base + ".versions"
	versions := filepath.Join(parent, versionsRel)
	target := filepath.Join(versionsRel, version)
	if cur, err := os.Readlink(link); err == nil && cur == target {
		if _, err := os.Stat(filepath.Join(parent, target)); err == nil {
			return false, nil
		}
	}
	if err := os.MkdirAll(versions, 0o755); err != nil {
		return false, fmt.Errorf("publish tree %s: %w", link, err)
	}
	final := filepath.Join(parent, target)
	// The version the link points at now: its unchanged files are shared.
	prev := ""
	if cur, err := os.Readlink(link); err == nil && filepath.Dir(cur) == versionsRel {
		prev = filepath.Join(parent, cur)
	}
	// A version directory only ever appears by an atomic rename of a complete
	// staging directory, so one that exists is complete: reuse it (a reader
	// may be inside it) and refresh its time so pruning keeps it.
	if _, err := os.Stat(final); err == nil {
		now := time.Now()
		os.Chtimes(final, now, now)
	} else if err := writeVersion(versions, final, prev, names, files, o); err != nil {
		return false, fmt.Errorf("publish tree %s: %w", link, err)
	}
	// Swap: a temp link renamed over the old one is atomic.
	tmpLink := filepath.Join(parent, "."+base+".link-tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(target, tmpLink); err != nil {
		return false, fmt.Errorf("publish tree %s: %w", link, err)
	}
	if err := os.Rename(tmpLink, link); err != nil {
		os.Remove(tmpLink)
		return false, fmt.Errorf("publish tree %s: %w", link, err)
	}
	if err := syncDir(parent); err != nil {
		return false, fmt.Errorf("publish tree %s: %w", link, err)
	}
	prune(versions, version, o.Retain)
	return true, nil
}

// writeVersion writes the files into a staging directory and renames it to
// final. A file whose content, mode and owner are the same in prev (the
// version being replaced) is hard-linked from there instead of written, so
// a change costs what it changes, in time and in space. Nothing in staging
// is visible before the rename, so files are written in place (no temp
// name) and each directory is fsynced once, after its files.
func writeVersion(versions, final, prev string, names []string, files map[string][]byte, o Options) error {
	staging, err := os.MkdirTemp(versions, ".staging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging) // no-op once renamed
	dirs := map[string]bool{staging: true}
	for _, n := range names {
		dst := filepath.Join(staging, filepath.FromSlash(n))
		dir := filepath.Dir(dst)
		if !dirs[dir] {
			if err := os.MkdirAll(dir, o.dirMode()); err != nil {
				return err
			}
			for d := dir; d != staging && !dirs[d]; d = filepath.Dir(d) {
				dirs[d] = true
			}
		}
		if prev != "" && linkSame(filepath.Join(prev, filepath.FromSlash(n)), dst, files[n], o) {
			continue
		}
		if err := writeNew(dst, files[n], o); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	if err := os.Chmod(staging, o.dirMode()); err != nil {
		return err
	}
	if err := os.Rename(staging, final); err != nil {
		return err
	}
	return syncDir(versions)
}

// linkSame hard-links old to dst when old is a regular file holding data
// with o's mode (and owner, when o sets one); false when it does not or the
// link fails (another file system, a link limit): then the caller writes.
func linkSame(old, dst string, data []byte, o Options) bool {
	st, err := os.Lstat(old)
	if err != nil || !st.Mode().IsRegular() || st.Size() != int64(len(data)) || st.Mode().Perm() != o.mode().Perm() {
		return false
	}
	if o.Chown && !sameOwner(st, o) {
		return false
	}
	f, err := os.Open(old)
	if err != nil {
		return false
	}
	got := make([]byte, len(data)+1) // +1: notice a file that grew since the stat
	n, _ := io.ReadFull(f, got)
	f.Close()
	if n != len(data) || !bytes.Equal(got[:n], data) {
		return false
	}
	return os.Link(old, dst) == nil
}

// writeNew creates dst (which must not exist) with data, mode and owner, and
// fsyncs it.
func writeNew(dst string, data []byte, o Options) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(o.mode()); err != nil {
		f.Close()
		return err
	}
	if o.Chown {
		if err := f.Chown(o.UID, o.GID); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// prune removes version directories other than current that are older than
// retain, always keeping the newest superseded one.
func prune(versions, current string, retain time.Duration) {
	if retain <= 0 {
		retain = 30 * time.Second
	}
	cutoff := time.Now().Add(-retain).UnixNano()
	entries, err := os.ReadDir(versions)
	if err != nil {
		return
	}
	type v struct {
		name string
		mod  int64
	}
	var old []v
	for _, e := range entries {
		if e.Name() == current {
			continue
		}
		if strings.HasPrefix(e.Name(), ".staging-") { // a crash's leftover, or a concurrent writer's
			if info, err := e.Info(); err == nil && info.ModTime().UnixNano() < cutoff {
				os.RemoveAll(filepath.Join(versions, e.Name()))
			}
			continue
		}
		if info, err := e.Info(); err == nil {
			old = append(old, v{e.Name(), info.ModTime().UnixNano()})
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i].mod > old[j].mod })
	for i, o := range old {
		if i >= 1 && o.mod < cutoff {
			os.RemoveAll(filepath.Join(versions, o.name))
		}
	}
}

// CheckRelPath rejects a path that is empty, absolute, or climbs out with "..".
func CheckRelPath(p string) error {
	if p == "" {
		return errors.New("empty file name")
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return fmt.Errorf("file name %q: must be relative", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || part == "" {
			return fmt.Errorf("file name %q: must not contain empty, . or .. segments", p)
		}
	}
	return nil
}
