package annotations

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseVocabularies(t *testing.T) {
	s := Parse(map[string]string{
		InjectHelpers:                            "proxy, adapter,proxy",
		LogDir:                                   "/var/log/app",
		"proxy.sidecarkit.io/idle-timeout":       "1m",
		IstioIncludeInbound:                      "",
		IstioExcludeOutCIDRs:                     "10.1.2.3, fd00::/8",
		IstioProxyConfig:                         `{"holdApplicationUntilProxyStarts": true, "tracing": {}}`,
		"sidecar.istio.io/bootstrapOverride":     "x",
		VaultSecret + "db":                       "kv/db",
		VaultFile + "db":                         "db.env",
		VaultPrePopulateOnly:                     "TRUE",
		"vault.hashicorp.com/agent-cache-enable": "true",
	}, map[string]string{IstioInject: "true"}, nil)
	if len(s.Problems) > 0 {
		t.Fatal(s.Problems)
	}
	if s.Inject == nil || !*s.Inject || s.InjectSource != "label "+IstioInject {
		t.Errorf("inject %v from %q", s.Inject, s.InjectSource)
	}
	if !reflect.DeepEqual(s.Helpers, []string{"proxy", "adapter"}) {
		t.Errorf("helpers %q", s.Helpers)
	}
	if s.IncludeInbound == nil || len(*s.IncludeInbound) != 0 {
		t.Errorf(`includeInboundPorts "" must mean none, got %v`, s.IncludeInbound)
	}
	if !reflect.DeepEqual(s.ExcludeOutboundCIDRs, []string{"10.1.2.3/32", "fd00::/8"}) {
		t.Errorf("cidrs %q", s.ExcludeOutboundCIDRs)
	}
	if s.HoldApplication == nil || !*s.HoldApplication {
		t.Error("holdApplicationUntilProxyStarts not read")
	}
	if !reflect.DeepEqual(s.Flags["proxy"], []Flag{{Name: "idle-timeout", Value: "1m", Key: "proxy.sidecarkit.io/idle-timeout"}}) {
		t.Errorf("flags %+v", s.Flags)
	}
	if !reflect.DeepEqual(s.Vault.Files, []VaultFileSpec{{Name: "db", Path: "kv/db", File: "db.env"}}) || !s.Vault.PrePopulateOnly {
		t.Errorf("vault %+v", s.Vault)
	}
	var keys []string
	for _, r := range s.Refused {
		keys = append(keys, r.Key)
	}
	want := []string{IstioProxyConfig + "#tracing", "sidecar.istio.io/bootstrapOverride", "vault.hashicorp.com/agent-cache-enable"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("refused %q, want %q", keys, want)
	}
}

// FuzzParse: any annotations, labels and flag checker outcome: no panic,
// the same answer twice, every problem names an annotation, and an
// annotation outside the three vocabularies is never touched.
func FuzzParse(f *testing.F) {
	f.Add("sidecarkit.io/inject", "true", "traffic.sidecar.istio.io/includeInboundPorts", "80,443", "vault.hashicorp.com/agent-inject-secret-a", "kv/a")
	f.Add("proxy.istio.io/config", "holdApplicationUntilProxyStarts: true\nx: [", "vault.hashicorp.com/agent-inject-template-a", "{{", "vault.hashicorp.com/agent-inject-file-a", "../x")
	f.Add("adapter.sidecarkit.io/es-url", "http://x", ".sidecarkit.io/", "", "sidecarkit.io", "\x00")
	f.Add("traffic.sidecar.istio.io/excludeOutboundIPRanges", "::/0,1.2.3.4/99", "sidecar.istio.io/proxyCPU", "-1", "sidecarkit.io/log-dir", "/a/../b")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		ann := map[string]string{k1: v1, k2: v2, k3: v3, "example.com/other": "x"}
		a := Parse(ann, map[string]string{k1: v2}, nil)
		b := Parse(ann, map[string]string{k1: v2}, nil)
		if !reflect.DeepEqual(a, b) {
			t.Fatal("two parses of the same input differ")
		}
		for _, p := range a.Problems {
			if !strings.Contains(p.Error(), "annotation") && !strings.Contains(p.Error(), "vault secret") && !strings.Contains(p.Error(), "label") {
				t.Fatalf("problem does not name its annotation: %v", p)
			}
		}
		for _, r := range a.Refused {
			if r.Key == "example.com/other" {
				t.Fatal("a foreign annotation was refused")
			}
		}
	})
}
