package publish

import (
	"io/fs"
	"syscall"
)

// sameOwner reports whether st is owned as o asks (-1 leaves a side alone).
func sameOwner(st fs.FileInfo, o Options) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return (o.UID < 0 || int(sys.Uid) == o.UID) && (o.GID < 0 || int(sys.Gid) == o.GID)
}
