package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testCfg struct {
	Addr   string
	Delay  time.Duration
	N      int
	On     bool
	Tags   []string
	Vault  string
	Routes []struct{ Path, Cluster string }
	Ratio  float64
}

func bind(c *testCfg) *Loader {
	l := NewLoader("proxy")
	l.String(&c.Addr, "admin-addr", ":15000", "admin listen address")
	l.Duration(&c.Delay, "drain-delay", 5*time.Second, "")
	l.Int(&c.N, "workers", 1, "")
	l.Bool(&c.On, "enabled", false, "")
	l.Strings(&c.Tags, "tags", []string{"a"}, "")
	l.String(&c.Vault, "vault-addr", "", "")
	l.Env("vault-addr", "VAULT_ADDR")
	l.Float(&c.Ratio, "ratio", 0.5, "")
	l.Section(&c.Routes, "routes", "routes")
	return l
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "admin-addr: ':1'\nworkers: 3\ndrain-delay: 1s\ntags: [x, y]\nroutes:\n  - {path: /a, cluster: c}\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want testCfg
	}{
		{"defaults", nil, nil, testCfg{Addr: ":15000", Delay: 5 * time.Second, N: 1, Tags: []string{"a"}, Ratio: 0.5}},
		{"file", []string{"--config", file}, nil, testCfg{Addr: ":1", Delay: time.Second, N: 3, Tags: []string{"x", "y"}, Ratio: 0.5,
			Routes: []struct{ Path, Cluster string }{{"/a", "c"}}}},
		{"env beats file", []string{"--config", file}, []string{"PROXY_WORKERS=7", "PROXY_TAGS=p,q"}, testCfg{Addr: ":1", Delay: time.Second, N: 7, Tags: []string{"p", "q"}, Ratio: 0.5,
			Routes: []struct{ Path, Cluster string }{{"/a", "c"}}}},
		{"flag beats env", []string{"--workers=9", "--tags", "m", "--tags", "n,o", "--enabled"}, []string{"PROXY_WORKERS=7"}, testCfg{Addr: ":15000", Delay: 5 * time.Second, N: 9, On: true, Tags: []string{"m", "n", "o"}, Ratio: 0.5}},
		{"ecosystem env", nil, []string{"VAULT_ADDR=http://v:8200"}, testCfg{Addr: ":15000", Delay: 5 * time.Second, N: 1, Tags: []string{"a"}, Vault: "http://v:8200", Ratio: 0.5}},
		{"own env beats ecosystem", nil, []string{"VAULT_ADDR=http://v:8200", "PROXY_VAULT_ADDR=http://w"}, testCfg{Addr: ":15000", Delay: 5 * time.Second, N: 1, Tags: []string{"a"}, Vault: "http://w", Ratio: 0.5}},
		{"bare seconds", []string{"--drain-delay=2.5"}, nil, testCfg{Addr: ":15000", Delay: 2500 * time.Millisecond, N: 1, Tags: []string{"a"}, Ratio: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c testCfg
			l := bind(&c)
			if _, err := l.Parse(tt.args, tt.env); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, tt.want) {
				t.Errorf("got %+v\nwant %+v", c, tt.want)
			}
		})
	}
}

func TestEveryProblemNamed(t *testing.T) {
	file := writeFile(t, "workers: many\nbogus: 1\nroutes:\n  - {path: /a, clustr: c}\n")
	var c testCfg
	l := bind(&c)
	_, err := l.Parse([]string{"--config", file}, []string{"PROXY_DRAIN_DELAY=soon", "PROXY_ENABLED=maybe"})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{`PROXY_DRAIN_DELAY="soon"`, `PROXY_ENABLED="maybe"`, `key "workers"`, "not a whole number", `key "bogus": unknown key`, `clustr`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestUnknownFlag(t *testing.T) {
	var c testCfg
	_, err := bind(&c).Parse([]string{"--nope"}, nil)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("got %v", err)
	}
}

func TestSourceAndPositional(t *testing.T) {
	var c testCfg
	l := bind(&c)
	rest, err := l.Parse([]string{"--workers", "2", "extra"}, []string{"PROXY_ENABLED=1"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Source("workers") != "flag --workers" || l.Source("enabled") != "env PROXY_ENABLED" || l.Source("tags") != "default" {
		t.Errorf("sources: %s / %s / %s", l.Source("workers"), l.Source("enabled"), l.Source("tags"))
	}
	if len(rest) != 1 || rest[0] != "extra" {
		t.Errorf("rest %v", rest)
	}
}

func TestProblems(t *testing.T) {
	var p Problems
	if p.Err() != nil {
		t.Fatal("empty problems not nil")
	}
	p.Add("--port", "abc", "not a port")
	if got := p.Err().Error(); got != `--port "abc": not a port` {
		t.Fatal(got)
	}
}
