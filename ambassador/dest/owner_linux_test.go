package dest

import (
	"io/fs"
	"syscall"
)

func owner(st fs.FileInfo) (int, int) {
	s := st.Sys().(*syscall.Stat_t)
	return int(s.Uid), int(s.Gid)
}
