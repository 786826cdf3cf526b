package render

import (
	"errors"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/shared/publish"
)

func view() brain.Map {
	return brain.Map{
		{Kind: brain.Key, Name: "app/name"}:   {Exists: true, Value: []byte("shop")},
		{Kind: brain.Key, Name: "app/json"}:   {Exists: true, Value: []byte(`{"port": 8080, "hosts": ["a", "b"]}`)},
		{Kind: brain.Key, Name: "app/gone"}:   {Exists: false},
		{Kind: brain.Prefix, Name: "app/db/"}: {Pairs: []brain.KV{{Key: "app/db/", Value: nil}, {Key: "app/db/host", Value: []byte("h")}, {Key: "app/db/opts/ssl", Value: []byte("on")}, {Key: "app/db/port", Value: []byte("5432")}}},
		{Kind: brain.Service, Name: "web"}:    {Instances: []brain.Instance{{ID: "w1", Name: "web", Address: "10.0.0.1", Port: 80}, {ID: "w2", Name: "web", Address: "10.0.0.2", Port: 81}}},
	}
}

func TestTemplateFunctions(t *testing.T) {
	tmpl, err := Parse("t", `name={{ key "app/name" }}
def={{ keyOrDefault "app/gone" "fallback" }} {{ keyOrDefault "app/name" "x" }}
exists={{ keyExists "app/gone" }}
{{ range ls "app/db" }}ls {{ .Key }}={{ .Value }}
{{ end }}{{ range tree "app/db/" }}tree {{ .Key }}={{ .Value }}
{{ end }}{{ range service "web" }}upstream {{ .Address }}:{{ .Port }};
{{ end }}{{ with parseJSON (key "app/json") }}port={{ .port }} first={{ index .hosts 0 }}{{ end }}
env={{ env "WHO" }} json={{ toJSON (split "," "a,b") }}`)
	if err != nil {
		t.Fatal(err)
	}
	r := tmpl.Execute(view(), map[string]string{"WHO": "me"}, false)
	if !r.Complete() || r.Err != nil {
		t.Fatalf("missing %v err %v", r.Missing, r.Err)
	}
	want := `name=shop
def=fallback shop
exists=false
ls host=h
ls port=5432
tree host=h
tree opts/ssl=on
tree port=5432
upstream 10.0.0.1:80;
upstream 10.0.0.2:81;
port=8080 first=a
env=me json=["a","b"]`
	if string(r.Data) != want {
		t.Fatalf("got\n%s\nwant\n%s", r.Data, want)
	}
	if len(r.Deps) != 5 {
		t.Fatalf("deps %v", r.Deps)
	}
}

func TestTemplateMissingKeyIsError(t *testing.T) {
	tmpl, _ := Parse("t", `{{ key "app/gone" }}`)
	r := tmpl.Execute(view(), nil, false)
	if !r.Complete() || !errors.Is(r.Err, ErrMissing) || !strings.Contains(r.Err.Error(), `"app/gone"`) {
		t.Fatalf("got %+v", r)
	}
	if r := tmpl.Execute(view(), nil, true); r.Err != nil || string(r.Data) != "" {
		t.Fatalf("allowMissing: %+v", r)
	}
}

func TestTemplateDiscoversDependencies(t *testing.T) {
	// The keys a template reads depend on data it reads first: each pass
	// names what it still needs; nothing is rendered until all is known.
	tmpl, _ := Parse("t", `{{ range ls "svc" }}{{ key (printf "cfg/%s" .Value) }}{{ end }}`)
	v := brain.Map{}
	r := tmpl.Execute(v, nil, false)
	if r.Complete() || len(r.Missing) != 1 || r.Missing[0] != (brain.Dep{Kind: brain.Prefix, Name: "svc/"}) {
		t.Fatalf("pass 1: %+v", r)
	}
	v[brain.Dep{Kind: brain.Prefix, Name: "svc/"}] = brain.Data{Pairs: []brain.KV{{Key: "svc/a", Value: []byte("x")}}}
	r = tmpl.Execute(v, nil, false)
	if r.Complete() || r.Missing[0] != (brain.Dep{Kind: brain.Key, Name: "cfg/x"}) {
		t.Fatalf("pass 2: %+v", r)
	}
	v[brain.Dep{Kind: brain.Key, Name: "cfg/x"}] = brain.Data{Exists: true, Value: []byte("done")}
	if r = tmpl.Execute(v, nil, false); !r.Complete() || string(r.Data) != "done" {
		t.Fatalf("pass 3: %+v", r)
	}
}

func TestTreeAndKey(t *testing.T) {
	r := Tree(view(), "app/db", false)
	if r.Err != nil || len(r.Files) != 3 || string(r.Files["opts/ssl"]) != "on" {
		t.Fatalf("tree %+v", r)
	}
	if r := Tree(brain.Map{}, "app/db", false); r.Complete() {
		t.Fatal("tree of unknown prefix is complete")
	}
	empty := brain.Map{{Kind: brain.Prefix, Name: "e/"}: {}}
	if r := Tree(empty, "e", false); !errors.Is(r.Err, ErrMissing) {
		t.Fatalf("empty tree: %v", r.Err)
	}
	if r := Tree(empty, "e", true); r.Err != nil || len(r.Files) != 0 {
		t.Fatalf("empty tree allowed: %+v", r)
	}
	if r := Key(view(), "app/gone", false); !errors.Is(r.Err, ErrMissing) {
		t.Fatalf("missing key: %+v", r)
	}
	if r := Key(view(), "app/name", false); string(r.Data) != "shop" {
		t.Fatalf("key: %+v", r)
	}
}

func TestTreeFilesRejectsConflicts(t *testing.T) {
	_, err := TreeFiles("p/", []brain.KV{{Key: "p/a", Value: []byte("1")}, {Key: "p/a/b", Value: []byte("2")}})
	if err == nil || !strings.Contains(err.Error(), `"p/a"`) {
		t.Fatalf("conflict: %v", err)
	}
	_, err = TreeFiles("p/", []brain.KV{{Key: "p/../x"}})
	if err == nil || !strings.Contains(err.Error(), `p/../x`) {
		t.Fatalf("escape: %v", err)
	}
}

func TestParseErrorsNameTheTemplate(t *testing.T) {
	if _, err := Parse("nginx.tmpl", `{{ key "x" `); err == nil || !strings.Contains(err.Error(), "nginx.tmpl") {
		t.Fatalf("got %v", err)
	}
	if _, err := Parse("t", `{{ nosuchfunc }}`); err == nil {
		t.Fatal("unknown function accepted")
	}
}

func TestSplitService(t *testing.T) {
	if n, tag, err := SplitService("primary.db"); n != "db" || tag != "primary" || err != nil {
		t.Fatalf("%q %q %v", n, tag, err)
	}
	for _, bad := range []string{"", ".db", "db.", "a b", "x/y"} {
		if _, _, err := SplitService(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzTemplate feeds arbitrary template text and KV data through Parse and
// Execute: neither may panic, and a complete render is deterministic.
func FuzzTemplate(f *testing.F) {
	f.Add(`{{ key "app/name" }}`, `{"a":1}`)
	f.Add(`{{ range tree "app/db" }}{{ .Key }}{{ end }}`, `[1,2`)
	f.Add(`{{ with parseJSON (key "app/json") }}{{ .port }}{{ end }}`, `{"port":1} x`)
	f.Add(`{{ range service "tag.web" }}{{ .Address }}{{ end }}{{ toJSON (ls "app") }}`, ``)
	f.Add(`{{ define "x" }}{{ template "x" }}{{ end }}{{ template "x" }}`, `null`)
	f.Fuzz(func(t *testing.T, text, value string) {
		tmpl, err := Parse("fuzz", text)
		if err != nil {
			return
		}
		v := view()
		v[brain.Dep{Kind: brain.Key, Name: "app/json"}] = brain.Data{Exists: true, Value: []byte(value)}
		r1 := tmpl.Execute(v, map[string]string{"A": value}, false)
		r2 := tmpl.Execute(v, map[string]string{"A": value}, false)
		if r1.Complete() && r1.Err == nil && string(r1.Data) != string(r2.Data) {
			t.Fatalf("not deterministic")
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `1 2`, `"x"`, `{`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseJSON([]byte(s))
		if err == nil && v == nil && strings.TrimSpace(s) != "null" {
			t.Fatalf("%q parsed to nil without error", s)
		}
	})
}

// FuzzTreeFiles feeds arbitrary Consul key names (outside input) through the
// tree mapping: either an error, or files whose paths are safe and never
// both a file and a directory.
func FuzzTreeFiles(f *testing.F) {
	f.Add("p/a", "p/a/b", "p/c")
	f.Add("p/../x", "p/", "p/d/")
	f.Add("p/a//b", "p/.", "p/a b")
	f.Fuzz(func(t *testing.T, k1, k2, k3 string) {
		files, err := TreeFiles("p/", []brain.KV{{Key: k1}, {Key: k2}, {Key: k3}})
		if err != nil {
			return
		}
		for p := range files {
			if err := publish.CheckRelPath(p); err != nil {
				t.Fatalf("unsafe path %q: %v", p, err)
			}
			for q := range files {
				if strings.HasPrefix(q, p+"/") {
					t.Fatalf("%q is a file and a directory (%q)", p, q)
				}
			}
		}
	})
}
