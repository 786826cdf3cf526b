package manifests

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// The whole pod on a real Kubernetes node: manifests/native and
// manifests/legacy as shipped (plus imagePullPolicy: Never, one replica for
// legacy, and the CA of the test's Vault), against in-cluster Vault (real
// Kubernetes auth: the apiserver's TokenReview), Consul and VictoriaLogs;
// then every snippet.

var ourImages = []string{"proxy", "ambassador", "adapter", "configsync", "pause", "demoapp"}

func buildKubeImages(t *testing.T) {
	t.Helper()
	testenv.RequireDocker(t)
	for _, b := range []string{"vault", "consul", "victorialogs"} {
		if exec.Command("docker", "image", "inspect", "sidecarkit/server-"+b+":latest").Run() != nil {
			testenv.Binary(t, b)
		}
	}
	script, _ := filepath.Abs("../integration/images.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{ourImages, {"--missing", "server-vault", "server-consul", "server-victorialogs"}} {
		if out, err := exec.CommandContext(ctx, script, args...).CombinedOutput(); err != nil {
			t.Fatalf("images.sh %v: %v\n%s", args, err, out)
		}
	}
}

func fingerprint(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])[:16]
}

type cluster struct {
	*testenv.Kubernetes
	http *http.Client
}

func (c *cluster) get(u string) (int, string, error) {
	code, body, _, err := c.getH(u)
	return code, body, err
}

func (c *cluster) getH(u string) (int, string, http.Header, error) {
	resp, err := c.http.Get(u)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, nil
}

// metricSum adds the values of the series of metric name whose labels
// contain every one of labels.
func metricSum(metrics, name string, labels ...string) float64 {
	var sum float64
next:
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		for _, lb := range labels {
			if !strings.Contains(l, lb) {
				continue next
			}
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func (c *cluster) jsonpath(t testing.TB, ns, obj, path string) string {
	t.Helper()
	return c.Kubectl(t, append(append([]string{"get", "-n", ns}, strings.Fields(obj)...), "-o", "jsonpath="+path)...)
}

// vlCount counts VictoriaLogs entries matching q (from inside the netns).
func (c *cluster) vlCount(vl, q string) (int, error) {
	resp, err := c.http.PostForm("http://"+vl+"/select/logsql/query", url.Values{"query": {q + " | stats count() n"}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		N string `json:"n"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("HTTP %d %s", resp.StatusCode, b)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return 0, nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("%v: %s", err, b)
	}
	return strconv.Atoi(r.N)
}

func (c *cluster) vlQuery(t testing.TB, vl, q string) []map[string]any {
	t.Helper()
	resp, err := c.http.PostForm("http://"+vl+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("VictoriaLogs line not JSON: %s", l)
		}
		out = append(out, d)
	}
	return out
}

func eventually(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, d, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// servers are the in-cluster Vault (dev mode, plus a TLS listener with a
// certificate for vault.vault.svc from the cluster CA), Consul, VictoriaLogs
// and the upstream the app calls.
func servers(k *testenv.Kubernetes, t *testing.T) string {
	crt, key := k.IssueCert(t, "vault.vault.svc", "vault.vault.svc.cluster.local")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: vault}
---
apiVersion: v1
kind: Namespace
metadata: {name: consul}
---
apiVersion: v1
kind: Namespace
metadata: {name: logging}
---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Secret
metadata: {name: vault-tls, namespace: vault}
type: kubernetes.io/tls
data: {tls.crt: %s, tls.key: %s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: vault-config, namespace: vault}
data:
  tls.hcl: |
    listener "tcp" {
      address       = "0.0.0.0:8300"
      tls_cert_file = "/etc/vault/tls/tls.crt"
      tls_key_file  = "/etc/vault/tls/tls.key"
    }
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: vault, namespace: vault}
---
# Vault reviews the ambassadors' tokens with the TokenReview API.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vault-auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{kind: ServiceAccount, name: vault, namespace: vault}]
---
apiVersion: v1
kind: Pod
metadata: {name: vault, namespace: vault, labels: {app: vault}}
spec:
  serviceAccountName: vault
  containers:
  - name: vault
    image: sidecarkit/server-vault:latest
    imagePullPolicy: Never
    args: [server, -dev, -dev-root-token-id=root, -dev-listen-address=0.0.0.0:8200, -config=/etc/vault/config/tls.hcl]
    env:
    - {name: VAULT_DISABLE_MLOCK, value: "true"}
    - {name: SKIP_SETCAP, value: "1"}
    - {name: HOME, value: /tmp}
    readinessProbe: {httpGet: {path: /v1/sys/health, port: 8200}, periodSeconds: 1}
    volumeMounts:
    - {name: tmp, mountPath: /tmp}
    - {name: tls, mountPath: /etc/vault/tls, readOnly: true}
    - {name: config, mountPath: /etc/vault/config, readOnly: true}
  volumes:
  - {name: tmp, emptyDir: {}}
  - {name: tls, secret: {secretName: vault-tls}}
  - {name: config, configMap: {name: vault-config}}
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: vault}
spec:
  selector: {app: vault}
  ports: [{name: https, port: 8200, targetPort: 8300}]
---
apiVersion: v1
kind: Pod
metadata: {name: consul, namespace: consul, labels: {app: consul}}
spec:
  containers:
  - name: consul
    image: sidecarkit/server-consul:latest
    imagePullPolicy: Never
    args: [agent, -dev, -client=0.0.0.0, '-bind={{ GetInterfaceIP "eth0" }}', -log-level=warn]
    env: [{name: HOME, value: /tmp}]
    readinessProbe: {httpGet: {path: /v1/status/leader, port: 8500}, periodSeconds: 1}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: consul, namespace: consul}
spec:
  selector: {app: consul}
  ports: [{name: http, port: 8500}]
---
apiVersion: v1
kind: Pod
metadata: {name: victorialogs, namespace: logging, labels: {app: victorialogs}}
spec:
  containers:
  - name: victorialogs
    image: sidecarkit/server-victorialogs:latest
    imagePullPolicy: Never
    args: [-storageDataPath=/victoria-logs-data, -httpListenAddr=:9428, -retentionPeriod=100y, -loggerLevel=WARN]
    readinessProbe: {httpGet: {path: /health, port: 9428}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /victoria-logs-data}]
  volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: victorialogs, namespace: logging}
spec:
  selector: {app: victorialogs}
  ports: [{name: http, port: 9428}]
---
apiVersion: v1
kind: Pod
metadata: {name: upstream, namespace: demo, labels: {app: upstream}}
spec:
  containers:
  - name: upstream
    image: sidecarkit/demoapp:latest
    imagePullPolicy: Never
    args: [upstream, --listen=:9090]
---
apiVersion: v1
kind: Service
metadata: {name: upstream, namespace: demo}
spec:
  selector: {app: upstream}
  ports: [{name: http, port: 9090}]
`, b64(crt), b64(key))
}

// overlay is the only change made to the shipped pods: images from the
// node (imagePullPolicy: Never), the replica count, and the CA of the
// test's Vault for the ambassador (VAULT_CACERT).
func overlay(t *testing.T, k *testenv.Kubernetes, dir string, replicas int32) string {
	t.Helper()
	var docs []string
	for _, doc := range docSep.Split(k.Kubectl(t, "kustomize", dir), -1) {
		if !strings.Contains(doc, "kind: Deployment") {
			docs = append(docs, doc)
			continue
		}
		d := &appsv1.Deployment{}
		if err := yaml.Unmarshal([]byte(doc), d); err != nil {
			t.Fatal(err)
		}
		d.Spec.Replicas = &replicas
		patchPod(&d.Spec.Template.Spec)
		b, _ := yaml.Marshal(d)
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "\n---\n")
}

func patchPod(p *corev1.PodSpec) {
	fix := func(cs []corev1.Container) {
		for i := range cs {
			cs[i].ImagePullPolicy = corev1.PullNever
			if cs[i].Name == "ambassador" {
				cs[i].Env = append(cs[i].Env, corev1.EnvVar{Name: "VAULT_CACERT", Value: "/etc/vault-ca/ca.crt"})
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: "vault-ca", MountPath: "/etc/vault-ca", ReadOnly: true})
			}
		}
	}
	fix(p.InitContainers)
	fix(p.Containers)
	for _, c := range append(p.InitContainers, p.Containers...) {
		if c.Name == "ambassador" {
			p.Volumes = append(p.Volumes, corev1.Volume{Name: "vault-ca", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vault-ca"}}}})
		}
	}
}

// stack is the cluster with the servers seeded and native (default
// namespace, 2 replicas) and legacy (namespace legacy) rolled out.
type stack struct {
	k      *testenv.Kubernetes
	c      *cluster
	vl     string // VictoriaLogs pod IP:port
	vault  func(t testing.TB, args ...string) string
	consul func(t testing.TB, args ...string) string
	caCM   func(ns string) string
}

func deployStack(t *testing.T) *stack {
	k := testenv.StartKubernetes(t)
	startedAt := time.Now()
	buildKubeImages(t)
	imgs := []string{"sidecarkit/server-vault:latest", "sidecarkit/server-consul:latest", "sidecarkit/server-victorialogs:latest"}
	for _, n := range ourImages {
		imgs = append(imgs, "sidecarkit/"+n+":latest")
	}
	k.ImportImages(t, imgs...)
	c := &cluster{Kubernetes: k, http: k.HTTPClient()}
	c.http.Timeout = 15 * time.Second
	t.Logf("images built and imported in %v", time.Since(startedAt).Round(time.Second))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := k.KubectlErr("", "get", "pods", "-A", "-o", "wide")
			ev, _ := k.KubectlErr("", "get", "events", "-A", "--sort-by=.lastTimestamp")
			t.Logf("pods:\n%s\nevents:\n%s", out, lastLines(ev, 40))
			for _, ns := range []string{"default", "legacy"} {
				for _, ctr := range []string{"proxy", "ambassador", "configsync", "adapter", "app"} {
					l, _ := k.KubectlErr("", "logs", "-n", ns, "-l", "app.kubernetes.io/name=demoapp", "-c", ctr, "--tail=15")
					t.Logf("%s/%s:\n%s", ns, ctr, l)
				}
			}
		}
	})

	k.KubectlStdin(t, servers(k, t), "apply", "-f", "-")
	for _, p := range []string{"vault/vault", "consul/consul", "logging/victorialogs", "demo/upstream"} {
		ns, name, _ := strings.Cut(p, "/")
		k.Kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "pod/"+name, "--timeout=180s")
	}
	vaultIP := c.jsonpath(t, "vault", "pod/vault", "{.status.podIP}")
	consulIP := c.jsonpath(t, "consul", "pod/consul", "{.status.podIP}")
	vl := c.jsonpath(t, "logging", "pod/victorialogs", "{.status.podIP}") + ":9428"
	vaultEnv := []string{"VAULT_ADDR=http://" + vaultIP + ":8200", "VAULT_TOKEN=root", "HOME=" + t.TempDir()}
	vaultBin, consulBin := testenv.Binary(t, "vault"), testenv.Binary(t, "consul")
	vault := func(t testing.TB, args ...string) string {
		t.Helper()
		return k.Exec(t, vaultEnv, append([]string{vaultBin}, args...)...)
	}
	consul := func(t testing.TB, args ...string) string {
		t.Helper()
		return k.Exec(t, []string{"CONSUL_HTTP_ADDR=" + consulIP + ":8500", "HOME=" + t.TempDir()}, append([]string{consulBin}, args...)...)
	}
	// Seed, as README.md tells users: Kubernetes auth against this cluster's
	// apiserver (Vault uses its pod's token and CA for the TokenReview).
	vault(t, "kv", "put", "secret/demoapp", "username=demoapp", "password=initial-password-1")
	vault(t, "auth", "enable", "kubernetes")
	vault(t, "write", "auth/kubernetes/config", "kubernetes_host=https://kubernetes.default.svc")
	pol := filepath.Join(t.TempDir(), "demoapp.hcl")
	os.WriteFile(pol, []byte(`path "secret/data/demoapp" { capabilities = ["read"] }`+"\n"), 0o644)
	vault(t, "policy", "write", "demoapp", pol)
	vault(t, "write", "auth/kubernetes/role/demoapp", "bound_service_account_names=demoapp",
		"bound_service_account_namespaces=default,legacy,snippets", "audience=vault", "token_policies=demoapp", "token_ttl=1h")
	for kv, v := range map[string]string{"greeting": "hello", "color": "blue", "max_connections": "10"} {
		consul(t, "kv", "put", "config/demoapp/"+kv, v)
	}

	caCM := func(ns string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vault-ca, namespace: %s}\ndata:\n  ca.crt: |\n%s", ns,
			indent(string(k.CAPEM), "    "))
	}
	k.Kubectl(t, "create", "namespace", "legacy")
	for _, ns := range []string{"default", "legacy"} {
		k.KubectlStdin(t, caCM(ns), "apply", "-f", "-")
	}
	deployed := time.Now()
	k.KubectlStdin(t, overlay(t, k, "native", 2), "apply", "-n", "default", "-f", "-")
	k.KubectlStdin(t, overlay(t, k, "legacy", 1), "apply", "-n", "legacy", "-f", "-")
	for _, ns := range []string{"default", "legacy"} {
		k.Kubectl(t, "rollout", "status", "-n", ns, "deployment/demoapp", "--timeout=300s")
	}
	t.Logf("native (2 replicas) and legacy (1) rolled out in %v", time.Since(deployed).Round(time.Second))

	return &stack{k: k, c: c, vl: vl, vault: vault, consul: consul, caCM: caCM}
}

func TestPodOnKubernetes(t *testing.T) {
	st := deployStack(t)
	k, c, vl, vault, consul, caCM := st.k, st.c, st.vl, st.vault, st.consul, st.caCM
	pod := strings.Fields(c.jsonpath(t, "default", "pods -l app.kubernetes.io/name=demoapp", "{.items[*].metadata.name}"))[0]
	podIP := c.jsonpath(t, "default", "pod/"+pod, "{.status.podIP}")
	app := "http://" + podIP + ":8080"
	run := fmt.Sprintf("k8s%d", time.Now().UnixNano())

	t.Run("native start order: initnet, then each helper started, then the app", func(t *testing.T) {
		var p corev1.Pod
		if err := json.Unmarshal([]byte(k.Kubectl(t, "get", "-n", "default", "pod", pod, "-o", "json")), &p); err != nil {
			t.Fatal(err)
		}
		var initDone time.Time
		helpers := map[string]time.Time{}
		for _, s := range p.Status.InitContainerStatuses {
			switch {
			case s.Name == "initnet":
				if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
					t.Fatalf("initnet: %+v", s.State)
				}
				initDone = s.State.Terminated.FinishedAt.Time
			case s.State.Running != nil && s.Started != nil && *s.Started:
				helpers[s.Name] = s.State.Running.StartedAt.Time
			default:
				t.Errorf("helper %s not running and started: %+v", s.Name, s.State)
			}
		}
		appStart := p.Status.ContainerStatuses[0].State.Running.StartedAt.Time
		for h, st := range helpers {
			if st.Before(initDone) {
				t.Errorf("%s started %v before initnet finished %v", h, st, initDone)
			}
			if appStart.Before(st) {
				t.Errorf("app started %v before %s %v", appStart, h, st)
			}
		}
		if len(helpers) != 4 {
			t.Errorf("want 4 running helpers, got %v", helpers)
		}
		// Its first load already had the secret and the settings.
		_, body, err := c.get(app + "/state")
		var h struct {
			SHA      string            `json:"password_sha256"`
			Settings map[string]string `json:"settings"`
		}
		if err != nil || json.Unmarshal([]byte(body), &h) != nil || h.SHA != fingerprint("initial-password-1") || h.Settings["greeting"] != "hello" {
			t.Fatalf("app state: %v %s", err, body)
		}
		eventually(t, "the app's start line in VictoriaLogs", time.Minute, func() error {
			n, err := c.vlCount(vl, `kubernetes.pod.name:"`+pod+`" event:reload trigger:start password_sha256:`+h.SHA)
			if err == nil && n != 1 {
				err = fmt.Errorf("%d start lines", n)
			}
			if r, _ := c.vlCount(vl, `kubernetes.pod.name:"`+pod+`" event:reload trigger:retry`); r != 0 {
				return fmt.Errorf("the app retried loading %d times: it started before its files", r)
			}
			return err
		})
	})

	prom := "http://" + podIP + ":15090/stats/prometheus"
	metric := func(t testing.TB, listener string) float64 {
		t.Helper()
		_, m, err := c.get(prom)
		if err != nil {
			t.Fatalf("proxy metrics: %v", err)
		}
		return metricSum(m, "sidecarkit_proxy_requests_total", `listener="`+listener+`"`)
	}

	t.Run("inbound through the proxy, by pod IP and by Service", func(t *testing.T) {
		svc := c.jsonpath(t, "default", "svc/demoapp", "{.spec.clusterIP}")
		before := metric(t, "inbound")
		for _, u := range []string{app + "/?tag=" + run, "http://" + svc + "/?tag=" + run} {
			code, body, hdr, err := c.getH(u)
			if err != nil || code != 200 || !strings.Contains(body, "from demoapp") {
				t.Fatalf("GET %s: %d %q %v", u, code, body, err)
			}
			if !strings.Contains(hdr.Get("Via"), "sidecarkit") {
				t.Errorf("GET %s: no Via from the proxy: %v", u, hdr)
			}
		}
		// by Service the request may land on the other replica
		if after := metric(t, "inbound"); after < before+1 {
			t.Errorf("inbound requests %v -> %v", before, after)
		}
	})

	t.Run("upstream through the outbound listener", func(t *testing.T) {
		code, body, err := c.get(app + "/upstream")
		var r struct {
			Status int `json:"upstream_status"`
			Body   struct {
				Service string              `json:"service"`
				Headers map[string][]string `json:"headers"`
			} `json:"upstream_body"`
		}
		if err != nil || code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Status != 200 || r.Body.Service != "upstream" {
			t.Fatalf("GET /upstream: %d %v %s", code, err, body)
		}
		if len(r.Body.Headers["Via"]) == 0 {
			t.Errorf("the upstream saw no Via header: %v", r.Body.Headers)
		}
		if n := metric(t, "outbound"); n < 1 {
			t.Errorf("no request on the proxy's outbound listener")
		}
	})

	t.Run("kubelet probes reach the app without the proxy", func(t *testing.T) {
		// The app is Ready by kubelet probes on 8081 (readiness every 2 s),
		// which initnet excludes: over 7 s not one request reaches the
		// proxy's inbound listener.
		if r := c.jsonpath(t, "default", "pod/"+pod, `{.status.containerStatuses[?(@.name=="app")].ready}`); r != "true" {
			t.Fatalf("app not ready: %s", r)
		}
		before := metric(t, "inbound")
		time.Sleep(7 * time.Second)
		if after := metric(t, "inbound"); after != before {
			t.Fatalf("inbound requests grew %v -> %v with no client: probes go through the proxy", before, after)
		}
		code, _, err := c.get("http://" + podIP + ":8081/readyz")
		if err != nil || code != 200 {
			t.Fatalf("app probe port: %d %v", code, err)
		}
	})

	t.Run("vault kv put reaches the app (Kubernetes auth, real TokenReview)", func(t *testing.T) {
		pw := "rotated-" + run
		vault(t, "kv", "put", "secret/demoapp", "username=demoapp", "password="+pw)
		eventually(t, "the app holds the new password", 3*time.Minute, func() error {
			_, body, err := c.get(app + "/state")
			if err == nil && !strings.Contains(body, fingerprint(pw)) {
				err = fmt.Errorf("app state %s", body)
			}
			return err
		})
		// the login was a Kubernetes one: Vault's audit shows nothing, but its
		// token accessor list has a kubernetes-auth token for demoapp
		out := vault(t, "list", "-format=json", "auth/token/accessors")
		if !strings.Contains(out, "[") {
			t.Fatalf("accessors: %s", out)
		}
		code, body, err := c.get(app + "/vault")
		if err != nil || code != 200 || !strings.Contains(body, fingerprint(pw)) {
			t.Fatalf("GET /vault through the ambassador: %d %v %s", code, err, body)
		}
	})

	t.Run("consul kv put reaches the app's config", func(t *testing.T) {
		g := "bonjour-" + run
		consul(t, "kv", "put", "config/demoapp/greeting", g)
		eventually(t, "the app greets with the new setting", 2*time.Minute, func() error {
			_, body, err := c.get(app + "/")
			if err == nil && !strings.HasPrefix(body, g+" ") {
				err = fmt.Errorf("app says %q", body)
			}
			return err
		})
	})

	t.Run("logs arrive normalized and exactly once", func(t *testing.T) {
		const n = 500
		tag := run + "logs"
		if code, body, err := c.get(fmt.Sprintf("%s/log?n=%d&tag=%s", app, n, tag)); err != nil || code != 200 {
			t.Fatalf("GET /log: %d %s %v", code, body, err)
		}
		q := "tag:" + tag + " event:synthetic"
		eventually(t, "all lines in VictoriaLogs", 2*time.Minute, func() error {
			got, err := c.vlCount(vl, q)
			if err == nil && got != n {
				err = fmt.Errorf("%d of %d lines", got, n)
			}
			return err
		})
		seen := map[int]int{}
		for i, doc := range c.vlQuery(t, vl, q) {
			if i == 0 {
				if doc["level"] != "INFO" || doc["status"] != "FULFILLED" || doc["kubernetes.pod.name"] != pod {
					t.Errorf("not normalized: %v", doc)
				}
			}
			x, _ := strconv.Atoi(fmt.Sprint(doc["n"]))
			seen[x]++
		}
		for i := 1; i <= n; i++ {
			if seen[i] != 1 {
				t.Errorf("line n=%d arrived %d times", i, seen[i])
			}
		}
	})

	t.Run("legacy pod serves through its proxy", func(t *testing.T) {
		ip := c.jsonpath(t, "legacy", "pods -l app.kubernetes.io/name=demoapp", "{.items[0].status.podIP}")
		code, body, err := c.get("http://" + ip + ":8080/")
		if err != nil || code != 200 || !strings.Contains(body, "from demoapp") {
			t.Fatalf("legacy GET /: %d %q %v", code, body, err)
		}
		_, body, _ = c.get("http://" + ip + ":8080/state")
		if !strings.Contains(body, fingerprint("rotated-"+run)) {
			t.Errorf("legacy app state: %s", body)
		}
	})

	t.Run("a Job with native sidecars completes", func(t *testing.T) {
		k.KubectlStdin(t, `apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: demo}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      initContainers:
      - name: proxy
        image: sidecarkit/proxy:latest
        imagePullPolicy: Never
        restartPolicy: Always
        args: [--mode=transparent, --drain-delay=1s]
        startupProbe: {httpGet: {path: /startupz, port: 15000}, periodSeconds: 1, failureThreshold: 60}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      containers:
      - name: task
        image: sidecarkit/demoapp:latest
        imagePullPolicy: Never
        args: [get, http://upstream.demo.svc:9090/]
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, "apply", "-f", "-")
		k.Kubectl(t, "wait", "-n", "demo", "--for=condition=Complete", "job/once", "--timeout=180s")
	})

	// Not yet here: a rolling restart under steady load. Measured once
	// (kubectl rollout restart, 4 workers of /work?delay=50ms through the
	// Service): 15382 of 16907 requests got HTTP 503; the cause is not
	// investigated yet, so it is not asserted.

	t.Run("native stop order: the app first, then the helpers", func(t *testing.T) {
		name := strings.Fields(c.jsonpath(t, "default", "pods -l app.kubernetes.io/name=demoapp", "{.items[*].metadata.name}"))[0]
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		w := exec.CommandContext(ctx, filepath.Join(testenv.CacheDir(), "kubernetes", "kubectl"), "--kubeconfig", k.Kubeconfig,
			"get", "-n", "default", "pod", name, "-w", "-o", "json")
		out, _ := w.StdoutPipe()
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(out)
		var first corev1.Pod
		if err := dec.Decode(&first); err != nil {
			t.Fatal(err)
		}
		k.Kubectl(t, "scale", "-n", "default", "deployment/demoapp", "--replicas=0")
		finished := map[string]time.Time{}
		for {
			var p corev1.Pod
			if err := dec.Decode(&p); err != nil {
				break
			}
			for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
				if s.State.Terminated != nil && s.Name != "initnet" {
					finished[s.Name] = s.State.Terminated.FinishedAt.Time
				}
			}
			if len(finished) == 5 {
				break
			}
		}
		cancel()
		w.Wait()
		t.Logf("finished: %v", finished)
		if len(finished) != 5 {
			t.Fatalf("saw %d terminated containers, want 5: %v", len(finished), finished)
		}
		for _, h := range []string{"proxy", "ambassador", "configsync", "adapter"} {
			if finished[h].Before(finished["app"]) {
				t.Errorf("%s finished %v before the app %v", h, finished[h], finished["app"])
			}
		}
		// the proxy drains 5 s after its preStop: strictly after the app
		if !finished["proxy"].After(finished["app"]) {
			t.Errorf("proxy finished %v, not after the app %v", finished["proxy"], finished["app"])
		}
	})

	t.Run("snippets run", func(t *testing.T) {
		k.Kubectl(t, "create", "namespace", "snippets")
		k.Kubectl(t, "apply", "-n", "snippets", "-k", "base")
		k.KubectlStdin(t, caCM("snippets"), "apply", "-f", "-")
		for _, s := range []string{"proxy", "ambassador", "configsync", "adapter"} {
			b, _ := os.ReadFile("snippets/" + s + ".yaml")
			p := &corev1.Pod{}
			if err := yaml.Unmarshal(b, p); err != nil {
				t.Fatal(err)
			}
			patchPod(&p.Spec)
			js, _ := json.Marshal(p)
			k.KubectlStdin(t, string(js), "apply", "-n", "snippets", "-f", "-")
		}
		for _, name := range []string{"demoapp-with-proxy", "demoapp-with-ambassador", "demoapp-with-configsync", "demoapp-with-adapter"} {
			eventually(t, name+": helpers started, app running", 3*time.Minute, func() error {
				var p corev1.Pod
				if err := json.Unmarshal([]byte(k.Kubectl(t, "get", "-n", "snippets", "pod", name, "-o", "json")), &p); err != nil {
					return err
				}
				for _, s := range p.Status.InitContainerStatuses {
					if s.Name != "initnet" && (s.Started == nil || !*s.Started) {
						return fmt.Errorf("%s not started", s.Name)
					}
				}
				if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Running == nil {
					return fmt.Errorf("app not running: %+v", p.Status.ContainerStatuses)
				}
				if rc := p.Status.ContainerStatuses[0].RestartCount; rc != 0 {
					t.Fatalf("%s: the app restarted %d times", name, rc)
				}
				return nil
			})
		}
		// the proxy snippet captures the app's port
		ip := c.jsonpath(t, "snippets", "pod/demoapp-with-proxy", "{.status.podIP}")
		code, body, err := c.get("http://" + ip + ":8080/")
		if err != nil || code != 200 || !strings.Contains(body, "from demoapp") {
			t.Fatalf("proxy snippet GET /: %d %q %v", code, body, err)
		}
		_, m, _ := c.get("http://" + ip + ":15090/stats/prometheus")
		if metricSum(m, "sidecarkit_proxy_requests_total", `listener="inbound"`) < 1 {
			t.Errorf("the proxy snippet's inbound listener saw no request")
		}
	})
	t.Logf("RSS of the cluster: %s", k.RSS())
}

func indent(s, p string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(p + l + "\n")
	}
	return b.String()
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
