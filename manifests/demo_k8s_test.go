package manifests

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// TestDemoKubernetes is `make demo-k8s`, not a test: with
// SIDECARKIT_DEMO_K8S=1 it brings the whole pod up on a local cluster (as
// TestPodOnKubernetes does), prints what to try and keeps it until Ctrl-C.
func TestDemoKubernetes(t *testing.T) {
	if os.Getenv("SIDECARKIT_DEMO_K8S") != "1" {
		t.Skip("the demo runs only from `make demo-k8s` (SIDECARKIT_DEMO_K8S=1)")
	}
	st := deployStack(t)
	k := st.k
	kc := filepath.Join(os.TempDir(), "sidecarkit-demo-k8s.kubeconfig")
	b, _ := os.ReadFile(k.Kubeconfig)
	if err := os.WriteFile(kc, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pod := strings.Fields(st.c.jsonpath(t, "default", "pods -l app.kubernetes.io/name=demoapp", "{.items[*].metadata.name}"))[0]
	ip := st.c.jsonpath(t, "default", "pod/"+pod, "{.status.podIP}")
	t.Logf(`
The sidecarkit pod runs on a local Kubernetes %s node (network namespace %s).
Try (as root):
  export KUBECONFIG=%s PATH=$HOME/.cache/sidecarkit/bin/kubernetes:$PATH
  kubectl get pods -A -o wide
  kubectl logs deploy/demoapp -c proxy
  nsenter --net=/var/run/netns/%s curl -si http://%s:8080/          # through the proxy's inbound listener
  nsenter --net=/var/run/netns/%s curl -s  http://%s:8080/upstream  # the app's call through outbound
  nsenter --net=/var/run/netns/%s curl -s  http://%s:8080/state
  kubectl rollout restart deploy/demoapp
Ctrl-C tears everything down.`, testenv.KubernetesVersion, k.NetNS, kc, k.NetNS, ip, k.NetNS, ip, k.NetNS, ip)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	os.Remove(kc)
}
