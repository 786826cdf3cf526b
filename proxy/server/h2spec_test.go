package server

import (
	"encoding/xml"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// junit is the part of h2spec's JUnit report the test reads.
type junit struct {
	Suites []struct {
		Cases []struct {
			Package string    `xml:"package,attr"`
			Name    string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// runH2spec runs h2spec against addr and returns every case with whether it passed.
func runH2spec(t *testing.T, bin, addr string) map[string]bool {
	host, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "report.xml")
	out, _ := exec.Command(bin, "-h", host, "-p", port, "-o", "3", "-j", report).CombinedOutput()
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report: %v\n%s", err, out)
	}
	var j junit
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	res := map[string]bool{}
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			if c.Skipped != nil {
				continue
			}
			res[c.Package+" "+c.Name] = c.Failure == nil && c.Error == nil
		}
	}
	if len(res) == 0 {
		t.Fatalf("h2spec ran no case:\n%s", out)
	}
	return res
}

// TestH2spec runs h2spec (the HTTP/2 conformance suite) against the
// proxy's h2c listener and against Go's own HTTP/2 server (x/net, bundled
// in net/http) with the same app: the proxy must fail no case Go's server
// passes.
func TestH2spec(t *testing.T) {
	bin := testenv.Binary(t, "h2spec")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	app := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	p := startProxy(t, "", "--app", ln.Addr().String(), "--access-log=false")

	goRes := runH2spec(t, bin, ln.Addr().String())
	proxyRes := runH2spec(t, bin, p.addrs["inbound"].String())
	count := func(m map[string]bool) (pass, fail int) {
		for _, ok := range m {
			if ok {
				pass++
			} else {
				fail++
			}
		}
		return
	}
	gp, gf := count(goRes)
	pp, pf := count(proxyRes)
	t.Logf("h2spec: Go's x/net server %d passed, %d failed; proxy %d passed, %d failed", gp, gf, pp, pf)
	var worse, failed []string
	for name, ok := range proxyRes {
		if !ok {
			failed = append(failed, name)
			if goRes[name] {
				worse = append(worse, name)
			}
		}
	}
	sort.Strings(failed)
	for _, f := range failed {
		t.Logf("proxy fails: %s (Go's server: %s)", f, strconv.FormatBool(goRes[f]))
	}
	sort.Strings(worse)
	for _, w := range worse {
		t.Errorf("the proxy fails a case Go's server passes: %s", w)
	}
}
