package inject

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// FuzzInject: whatever the annotations, Inject does not panic, and when it
// injects, its JSON patch applied to the pod gives exactly the mutated pod
// and a second injection changes nothing.
func FuzzInject(f *testing.F) {
	f.Add("sidecarkit.io/inject-helpers", "proxy,ambassador", "vault.hashicorp.com/agent-inject-template-a~1b", "{{", "traffic.sidecar.istio.io/includeInboundPorts", "8081", 34)
	f.Add("vault.hashicorp.com/agent-inject-secret-x", "kv/x", "vault.hashicorp.com/agent-init-first", "true", "sidecar.istio.io/proxyMemory", "1Ki", 28)
	f.Add("sidecarkit.io/log-dir", "/logs", "sidecarkit.io/inject-helpers", "adapter", "adapter.sidecarkit.io/paths", "/x/*.log", 30)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string, minor int) {
		ann := map[string]string{k1: v1, k2: v2, k3: v3,
			"vault.hashicorp.com/role": "r", "vault.hashicorp.com/service": "http://vault:8200"}
		pod := appPod(ann)
		res, err := Inject(Request{Pod: pod, Namespace: "apps", NamespaceLabels: enabled(), Major: 1, Minor: minor % 40}, testOptions())
		if err != nil || res.Skip != "" {
			return
		}
		orig, _ := json.Marshal(pod)
		ops, _ := json.Marshal(res.Patch)
		p, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := p.Apply(orig)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		want, _ := json.Marshal(res.Pod)
		if !jsonpatch.Equal(patched, want) {
			t.Fatal("patched pod differs from the mutated pod")
		}
		again, err := Inject(Request{Pod: res.Pod, Namespace: "apps", NamespaceLabels: enabled(), Major: 1, Minor: minor % 40}, testOptions())
		if err != nil || again.Skip == "" {
			t.Fatalf("second injection: %v %q", err, again.Skip)
		}
	})
}
