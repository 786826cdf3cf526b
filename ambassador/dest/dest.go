// Package dest checks and writes the files secrets are rendered to: atomic
// replacement through shared/publish, mode 0400 unless told otherwise, an
// optional owner, and an optional refusal of anything not on tmpfs (so a
// secret never reaches a disk).
package dest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/sidecarkit/sidecarkit/shared/publish"
)

// TmpfsMagic is statfs(2)'s f_type of tmpfs (TMPFS_MAGIC).
const TmpfsMagic = 0x01021994

// DefaultMode is the mode of a rendered file unless configured.
const DefaultMode fs.FileMode = 0o400

// File is one destination.
type File struct {
	Path  string
	Mode  fs.FileMode // 0: DefaultMode
	UID   int         // -1: leave
	GID   int         // -1: leave
	Tmpfs bool        // refuse a destination not on tmpfs
}

func (f File) options() publish.Options {
	o := publish.Options{Mode: f.Mode, UID: -1, GID: -1}
	if o.Mode == 0 {
		o.Mode = DefaultMode
	}
	if f.UID >= 0 || f.GID >= 0 {
		o.Chown, o.UID, o.GID = true, f.UID, f.GID
	}
	return o
}

// Check reports why the destination cannot be used: its directory missing,
// not a directory, or not tmpfs when that is required.
func (f File) Check() error {
	dir := filepath.Dir(f.Path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("destination %s: directory: %w", f.Path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("destination %s: %s is not a directory", f.Path, dir)
	}
	if f.Tmpfs {
		ok, err := IsTmpfs(dir)
		if err != nil {
			return fmt.Errorf("destination %s: %w", f.Path, err)
		}
		if !ok {
			return fmt.Errorf("destination %s: %s is not on tmpfs (--require-tmpfs); mount an emptyDir with medium: Memory there", f.Path, dir)
		}
	}
	return nil
}

// IsTmpfs reports whether dir is on a tmpfs file system.
func IsTmpfs(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Type) == TmpfsMagic, nil
}

// Write atomically replaces the file with data; changed is false when it
// already held exactly data. Errors name the path, never the content.
func (f File) Write(data []byte) (changed bool, err error) {
	if f.Tmpfs {
		if err := f.Check(); err != nil {
			return false, err
		}
	}
	changed, err = publish.File(f.Path, data, f.options())
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return false, fmt.Errorf("write %s: %s: %w", f.Path, pe.Op, pe.Err)
		}
		return false, fmt.Errorf("write %s: %w", f.Path, err)
	}
	return changed, nil
}
