package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Writing other files in the config file's directory does not reload;
// changing the file does.
func TestReloadOnlyOnConfigFile(t *testing.T) {
	addr, _ := startEcho(t, "a")
	yaml := "listeners:\n  - {name: inbound, address: 127.0.0.1:0, direction: inbound, target: " + addr + "}\n"
	p := startProxy(t, yaml)
	dir := filepath.Dir(p.path)
	for i := range 3 {
		os.WriteFile(filepath.Join(dir, "other.txt"), []byte{byte(i)}, 0o644)
		os.WriteFile(filepath.Join(dir, ".hidden"), []byte{byte(i)}, 0o644)
	}
	time.Sleep(time.Second) // well past the 200 ms debounce
	if n := len(p.log.Lines("config reloaded")); n != 0 {
		t.Fatalf("%d reloads after writing other files in the directory", n)
	}
	os.WriteFile(p.path, []byte(yaml+"# changed\n"), 0o644)
	deadline := time.Now().Add(10 * time.Second)
	for len(p.log.Lines("config reloaded")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reload after the config file changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
