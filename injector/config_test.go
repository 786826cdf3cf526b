package injector

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// parseArgs parses and validates a command line as the injector does.
func parseArgs(args []string) error {
	_, _, err := app.ParseConfig(Helper(), args, []string{"POD_NAMESPACE=mesh"})
	return err
}

func TestConfig(t *testing.T) {
	c, _, err := app.ParseConfig(Helper(), []string{"--kubernetes-version=v1.28.4", "--default-helpers=proxy,adapter"}, []string{"POD_NAMESPACE=mesh"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "mesh" || c.major != 1 || c.minor != 28 {
		t.Fatalf("%+v", c)
	}
	err = parseArgs([]string{"--image-pull-policy=Sometimes", "--default-helpers=envoy", "--kubernetes-version=latest", "--tls-cert-file=/x", "--listen=9443"})
	for _, want := range []string{"image-pull-policy", "default-helpers", "kubernetes-version", "tls-key-file", "listen"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	for in, want := range map[string][2]int{"1.34": {1, 34}, "v1.29.0": {1, 29}, "1.30+": {1, 30}} {
		ma, mi, ok := parseVersion(in)
		if !ok || ma != want[0] || mi != want[1] {
			t.Errorf("parseVersion(%q) = %d %d %v", in, ma, mi, ok)
		}
	}
	var p config.Problems
	validateInject(&p, &Config{Images: Images{Proxy: "p", Ambassador: "a b", Configsync: "c", Adapter: "d"}})
	if p.Err() == nil || !strings.Contains(p.Err().Error(), "ambassador-image") {
		t.Errorf("%v", p.Err())
	}
}

// TestInjectCommand: the offline command injects a Deployment's template
// and a Pod, leaves other kinds alone, and fails with the reason on a pod it
// would deny.
func TestInjectCommand(t *testing.T) {
	in := `apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {a: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {sidecar.istio.io/proxyCPU: 100m}
    spec:
      containers:
        - name: app
          image: web
          readinessProbe: {httpGet: {path: /, port: 8081}}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: app, image: x}]}
`
	dir := t.TempDir()
	f := filepath.Join(dir, "in.yaml")
	os.WriteFile(f, []byte(in), 0o644)
	var out, errb bytes.Buffer
	if code := InjectCommand([]string{"-f", f, "--kubernetes-version=1.28", "--image-pull-policy=Never"}, nil, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	docs := strings.Split(out.String(), "---\n")
	if len(docs) != 3 || !strings.Contains(docs[0], "kind: ConfigMap") {
		t.Fatalf("output:\n%s", out.String())
	}
	for _, d := range docs[1:] {
		for _, want := range []string{"name: initnet", "name: proxy", "sidecarkit.io/status", "imagePullPolicy: Never", "/usr/local/bin/proxy"} {
			if !strings.Contains(d, want) {
				t.Errorf("document lacks %q:\n%s", want, d)
			}
		}
	}
	if !strings.Contains(docs[1], "--istio-local-exclude-ports=8081") || !strings.Contains(docs[1], "cpu: 100m") {
		t.Errorf("deployment:\n%s", docs[1])
	}
	// stdin, and a denial.
	out.Reset()
	errb.Reset()
	bad := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {traffic.sidecar.istio.io/excludeInboundPorts: abc}\nspec: {containers: [{name: app, image: x}]}\n"
	if code := InjectCommand([]string{"-f", "-"}, nil, strings.NewReader(bad), &out, &errb); code != 1 || !strings.Contains(errb.String(), "excludeInboundPorts") || out.Len() != 0 {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errb.String(), out.String())
	}
	if code := InjectCommand(nil, nil, nil, &out, &errb); code != 2 {
		t.Fatalf("no -f: exit %d", code)
	}
	_ = corev1.PullNever
}
