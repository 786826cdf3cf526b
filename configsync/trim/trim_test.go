package trim

import (
	"os"
	"testing"
)

func TestPlanKeepsWritableMappings(t *testing.T) {
	maps := `00400000-009c8000 r-xp 00000000 fe:00 10185088   /bin/configsync
009c8000-01030000 r--p 005c8000 fe:00 10185088   /bin/configsync
01030000-0109a000 rw-p 00c30000 fe:00 10185088   /bin/configsync
0109a000-030de000 rw-p 00000000 00:00 0
7f00-8f00 r-xp 00000000 fe:00 1   /lib/other.so
9000-a000 r--s 00000000 fe:00 10185088   /bin/configsync
`
	ms, err := Plan(maps, "/bin/configsync")
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{{0x400000, 0x9c8000}, {0x9c8000, 0x1030000}}
	if len(ms) != len(want) || ms[0] != want[0] || ms[1] != want[1] {
		t.Fatalf("got %x, want %x", ms, want)
	}
}

func TestExecutableKeepsTheProcessWorking(t *testing.T) {
	n, err := Executable()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no mapping of the test binary found")
	}
	// Code and read-only data come back on the next touch.
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
}
