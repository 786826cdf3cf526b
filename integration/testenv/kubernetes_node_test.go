package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A whole node: a pod runs, is reachable at its IP, through a ClusterIP
// Service (kube-proxy) and by name (CoreDNS); and teardown leaves nothing:
// no netns, cgroups, mounts, shims or processes.
func TestKubernetesNodeRunsPods(t *testing.T) {
	var k *Kubernetes
	var rss string
	t.Run("cluster", func(t *testing.T) {
		k = StartKubernetes(t)
		ensureImages(t, "demoapp")
		k.ImportImages(t, "sidecarkit/demoapp:latest")
		k.KubectlStdin(t, `apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: web
    image: sidecarkit/demoapp:latest
    imagePullPolicy: Never
    args: [serve, --listen=:8080, --health-listen=:8081, --log-file=/tmp/app.log]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    readinessProbe: {httpGet: {path: /livez, port: 8081}, periodSeconds: 1}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8081}]
`, "apply", "-f", "-")
		k.Kubectl(t, "wait", "--for=condition=Ready", "pod/web", "--timeout=120s")
		podIP := k.Kubectl(t, "get", "pod", "web", "-o", "jsonpath={.status.podIP}")
		svcIP := k.Kubectl(t, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
		c := k.HTTPClient()
		for _, u := range []string{"http://" + podIP + ":8081/livez", "http://" + svcIP + "/livez"} {
			var body string
			waitUntil(t, time.Minute, u, func() error {
				resp, err := c.Get(u)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				body = string(b)
				if resp.StatusCode != 200 {
					return fmt.Errorf("HTTP %d %s", resp.StatusCode, b)
				}
				return nil
			})
			t.Logf("GET %s from the test process: %q", u, strings.TrimSpace(body))
		}
		// By name from a pod: CoreDNS, then kube-proxy, then the pod.
		k.KubectlStdin(t, `apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: get
    image: sidecarkit/demoapp:latest
    imagePullPolicy: Never
    args: [get, http://web.default.svc.cluster.local/livez]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, "apply", "-f", "-")
		k.Kubectl(t, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/client", "--timeout=120s")
		if logs := k.Kubectl(t, "logs", "client"); !strings.Contains(logs, "ok") {
			t.Errorf("client pod logs: %q", logs)
		}
		rss = k.RSS()
		t.Logf("RSS: %s", rss)
	})
	if k == nil {
		return
	}
	// teardown left nothing behind
	if _, err := os.Stat(k.netnsPath); err == nil {
		t.Errorf("netns %s still exists", k.NetNS)
	}
	if _, err := os.Stat(k.Dir); err == nil {
		t.Errorf("state dir %s still exists", k.Dir)
	}
	for _, h := range cgroupHierarchies() {
		if _, err := os.Stat(filepath.Join(h, k.cgroup)); err == nil {
			t.Errorf("cgroup %s still exists", filepath.Join(h, k.cgroup))
		}
	}
	if m := mountsUnder(k.Dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if p := shimPids(k.ctrSock); len(p) > 0 {
		t.Errorf("containerd shims left: %v", p)
	}
	if left, _ := filepath.Glob("/var/lib/cni/results/" + k.NetNS + "-*"); len(left) > 0 {
		t.Errorf("CNI results cache left: %v", left)
	}
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if dst, _ := os.Readlink(l); strings.HasPrefix(dst, k.Dir+"/") {
			t.Errorf("container log symlink left: %s -> %s", l, dst)
		}
	}
	if out, _ := exec.Command("pgrep", "-f", k.Dir).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("processes naming %s left: %s", k.Dir, out)
	}
}

func waitUntil(t testing.TB, d time.Duration, what string, f func() error) {
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
		time.Sleep(200 * time.Millisecond)
	}
}
