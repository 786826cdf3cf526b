// Package trim releases the pages of configsync's own executable that the
// process mapped while starting but no longer touches. A Go binary's
// read-only segments (code, read-only data, the function table) are file
// backed; start-up and the kernel's fault-around map most of them, so most
// of a small daemon's RSS is its binary. MADV_DONTNEED on those read-only,
// unmodified mappings only drops page-table entries: the pages stay in the
// page cache and come back on the next touch, identical. Writable mappings
// (data, heap, stacks) are never touched.
package trim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Mapping is one line of /proc/self/maps that Plan selected.
type Mapping struct {
	Start, End uintptr
}

// Plan returns the read-only, private mappings of exe in maps (the text of
// /proc/self/maps): the ones that are safe to drop.
func Plan(maps, exe string) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(strings.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[5] != exe {
			continue
		}
		perms := f[1]
		// r-xp (code) and r--p (read-only data); never anything writable
		// or shared.
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps line %q: bad range", sc.Text())
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || e <= s {
			return nil, fmt.Errorf("maps line %q: bad range", sc.Text())
		}
		out = append(out, Mapping{Start: uintptr(s), End: uintptr(e)})
	}
	return out, sc.Err()
}

// Executable drops this process's mapped but unmodified executable pages.
// It returns how many bytes of mappings it advised.
func Executable() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	ms, err := Plan(string(maps), exe)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range ms {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, m.Start, m.End-m.Start, syscall.MADV_DONTNEED); e != 0 {
			return n, fmt.Errorf("madvise %x-%x: %w", m.Start, m.End, e)
		}
		n += int(m.End - m.Start)
	}
	return n, nil
}
