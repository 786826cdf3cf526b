package config

import (
	"github.com/sidecarkit/sidecarkit/shared/app"

	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReparseDefaultsAndEffective(t *testing.T) {
	c, err := Reparse([]string{"run", "--app", "127.0.0.1:8080", "--upstream", "http://orders:9000"}, []string{"PROXY_ACCESS_LOG=false"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeExplicit || c.InboundAddr != ":15006" || c.OutboundAddress() != "127.0.0.1:15001" || c.AccessLog || c.SourceAddr != "127.0.0.6" {
		t.Errorf("defaults/env: %+v", c)
	}
	ls := c.Effective()
	if len(ls) != 2 || ls[0].Target != "127.0.0.1:8080" || ls[1].Cluster != UpstreamCluster {
		t.Errorf("effective listeners %+v", ls)
	}
	cl := c.EffectiveClusters()
	if len(cl) != 1 || cl[0].Endpoints[0].Address != "orders:9000" {
		t.Errorf("effective clusters %+v", cl)
	}
	tc, err := Reparse([]string{"--mode", "transparent"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ls := tc.Effective(); len(ls) != 2 || !ls[0].Transparent || !ls[1].Transparent || ls[0].Direction != Inbound || ls[1].Address != ":15001" {
		t.Errorf("transparent listeners %+v", ls)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	os.WriteFile(path, []byte(`
listeners:
  - name: in
    address: "nope"
    direction: sideways
    protocol: quic
    cluster: missing
  - name: in
    address: ":1"
    direction: inbound
routes:
  - name: r
    listeners: [ghost]
    cluster: nowhere
    match:
      path: {exact: "no-slash"}
      hosts: ["a*b"]
      headers: [{name: "bad name", exact: x, prefix: y}]
    request_headers_add: [{name: "x", value: "a\nb"}]
    max_request_body_bytes: -1
clusters:
  - name: c
    endpoints: [{address: "no-port"}]
`), 0o644)
	_, err := Reparse([]string{"--config", path, "--mode", "weird", "--access-log-sample", "2", "--source-addr", "x", "--max-header-bytes", "10", "--upstream", "https://a"}, nil)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, want := range []string{`mode "weird"`, `access-log-sample "2"`, `source-addr "x"`, `max-header-bytes "10"`, `upstream "https://a"`,
		`listeners[0].address "nope"`, `listeners[0].direction "sideways"`, `listeners[0].protocol "quic"`, `listeners[0].cluster "missing"`,
		`listeners[1].name "in": duplicate`, `routes[0].listeners "ghost"`, `routes[0].cluster "nowhere"`, `routes[0].match.path "no-slash"`,
		`routes[0].match.hosts "a*b"`, `routes[0].match.headers[0].name "bad name"`, `max_request_body_bytes "-1"`, "no-port"} {
		if !strings.Contains(msg, want) {
			t.Errorf("problems lack %s:\n%s", want, msg)
		}
	}
}

func TestUnknownKeyAndPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	os.WriteFile(path, []byte("upstream: http://a:1\nroutez: []\n"), 0o644)
	if _, err := Reparse([]string{"--config=" + path}, nil); err == nil || !strings.Contains(err.Error(), `"routez": unknown key`) {
		t.Errorf("unknown key: %v", err)
	}
	for _, c := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"--config", "/a.yaml"}, nil, "/a.yaml"},
		{[]string{"run", "-config=/b.yaml"}, nil, "/b.yaml"},
		{nil, []string{"PROXY_CONFIG=/c.yaml"}, "/c.yaml"},
		{[]string{"--app", "x:1"}, nil, ""},
	} {
		if _, got, _ := app.ParseConfig(Helper(), c.args, c.env); got != c.want {
			t.Errorf("config path of (%v, %v) = %q, want %q", c.args, c.env, got, c.want)
		}
	}
}

func FuzzReparseYAML(f *testing.F) {
	f.Add("routes: [{name: r, match: {path: {prefix: /}}}]\nupstream: http://a:1\n")
	f.Add("listeners: [{name: a, address: ':1', direction: inbound, target: 'b:2'}]\n")
	f.Add(":\n- [")
	f.Fuzz(func(t *testing.T, y string) {
		path := filepath.Join(t.TempDir(), "p.yaml")
		os.WriteFile(path, []byte(y), 0o644)
		c, err := Reparse([]string{"--config", path}, nil)
		if err == nil {
			c.Effective()
			c.EffectiveClusters()
		}
	})
}

func TestPathOptions(t *testing.T) {
	c, err := Reparse([]string{"--app", "127.0.0.1:8080"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.PathOptions(); o.Mode != "BASE" || o.EscapedSlashes != "keep" {
		t.Errorf("defaults %+v, want BASE/keep (Istio's)", o)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--path-normalization", "base"}, `path-normalization "base"`},
		{[]string{"--path-escaped-slashes", "drop"}, `path-escaped-slashes "drop"`},
		{[]string{"--path-normalization", "DECODE_AND_MERGE_SLASHES", "--path-escaped-slashes", "reject"}, `path-escaped-slashes "reject"`},
	} {
		_, err := Reparse(append([]string{"--app", "127.0.0.1:8080"}, c.args...), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %s", c.args, err, c.want)
		}
	}
	if _, err := Reparse([]string{"--app", "127.0.0.1:8080"}, []string{"PROXY_PATH_NORMALIZATION=MERGE_SLASHES"}); err != nil {
		t.Errorf("env: %v", err)
	}
}
