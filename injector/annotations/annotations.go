// Package annotations reads a pod's injection settings from its annotations
// (and the few labels that carry the same meaning): sidecarkit's own
// vocabulary, Istio's and vault-k8s'. It is pure: a map in, Settings out.
//
// Three outcomes per key: understood (it changes Settings), refused (a key of
// Istio's or Vault's vocabulary sidecarkit does not support: recorded in
// Settings.Refused with the reason, so the webhook can warn and report it —
// never silently ignored), or a problem (a bad value, or an unknown key of
// sidecarkit's own vocabulary: the pod is denied with every problem listed).
package annotations

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// Keys of sidecarkit's own vocabulary.
const (
	NamespaceLabel = "sidecarkit.io/injection" // on the namespace: enabled | disabled
	Inject         = "sidecarkit.io/inject"    // on the pod: true | false
	InjectHelpers  = "sidecarkit.io/inject-helpers"
	LogDir         = "sidecarkit.io/log-dir"    // adapter: the app's log directory
	ConfigDir      = "sidecarkit.io/config-dir" // configsync: where the app reads its config
	Status         = "sidecarkit.io/status"     // written by the injector
	AmbassadorYAML = "sidecarkit.io/ambassador-config"
	// FlagSuffix: "<helper>.sidecarkit.io/<flag>: value" sets a helper flag.
	FlagSuffix = ".sidecarkit.io/"
)

// Istio's vocabulary.
const (
	IstioInject          = "sidecar.istio.io/inject"
	IstioIncludeInbound  = "traffic.sidecar.istio.io/includeInboundPorts"
	IstioExcludeInbound  = "traffic.sidecar.istio.io/excludeInboundPorts"
	IstioIncludeOutCIDRs = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	IstioExcludeOutCIDRs = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	IstioExcludeOutPorts = "traffic.sidecar.istio.io/excludeOutboundPorts"
	IstioProxyCPU        = "sidecar.istio.io/proxyCPU"
	IstioProxyMemory     = "sidecar.istio.io/proxyMemory"
	IstioProxyCPULimit   = "sidecar.istio.io/proxyCPULimit"
	IstioProxyMemLimit   = "sidecar.istio.io/proxyMemoryLimit"
	IstioProxyConfig     = "proxy.istio.io/config"
)

// vault-k8s' vocabulary.
const (
	VaultPrefix          = "vault.hashicorp.com/"
	VaultInject          = VaultPrefix + "agent-inject"
	VaultRole            = VaultPrefix + "role"
	VaultService         = VaultPrefix + "service"
	VaultSecret          = VaultPrefix + "agent-inject-secret-"
	VaultTemplate        = VaultPrefix + "agent-inject-template-"
	VaultFile            = VaultPrefix + "agent-inject-file-"
	VaultCommand         = VaultPrefix + "agent-inject-command-"
	VaultPrePopulateOnly = VaultPrefix + "agent-pre-populate-only"
	VaultInitFirst       = VaultPrefix + "agent-init-first"
	VaultVolumePath      = VaultPrefix + "secret-volume-path"
)

// Helpers that can be asked for by name (initnet comes with proxy).
var Helpers = []string{"proxy", "ambassador", "configsync", "adapter"}

// Refusal is a key sidecarkit understands as someone else's vocabulary but
// does not support.
type Refusal struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

func (r Refusal) String() string { return r.Key + ": " + r.Reason }

// VaultFileSpec is one vault-k8s secret file.
type VaultFileSpec struct {
	Name     string // the <name> of agent-inject-secret-<name>
	Path     string // Vault path
	Template string // agent-inject-template-<name>, "" for none
	File     string // file name under the volume (agent-inject-file-<name>, default Name)
	Command  string // agent-inject-command-<name>
}

// Settings is what a pod asks for.
type Settings struct {
	// Inject: the pod's own choice (sidecarkit.io/inject or Istio's
	// sidecar.istio.io/inject, label or annotation); nil when it has none.
	Inject       *bool
	InjectSource string
	// MeshOff: sidecar.istio.io/inject=false (no proxy, other helpers may stay).
	MeshOff bool
	// Helpers from sidecarkit.io/inject-helpers; nil when not set.
	Helpers []string
	// Flags set by "<helper>.sidecarkit.io/<flag>" annotations, by helper, in
	// key order.
	Flags map[string][]Flag

	IncludeInbound       *[]string // nil: default ("*")
	ExcludeInbound       []string
	IncludeOutboundCIDRs *[]string
	ExcludeOutboundCIDRs []string
	ExcludeOutboundPorts []string
	ProxyRequests        map[string]resource.Quantity // "cpu", "memory"
	ProxyLimits          map[string]resource.Quantity
	HoldApplication      *bool

	Vault Vault

	LogDir    string
	ConfigDir string

	Refused []Refusal
	// Problems are bad values; a pod with any is denied.
	Problems []error
}

// Vault is vault-k8s' part of the settings.
type Vault struct {
	Inject          *bool
	Role            string
	Addr            string
	Files           []VaultFileSpec // sorted by Name
	PrePopulateOnly bool
	InitFirst       bool
	VolumePath      string // default /vault/secrets
}

// Flag is one helper flag set by annotation.
type Flag struct {
	Name, Value, Key string
}

var (
	flagName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	fileName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// Parse reads annotations and labels (labels only for sidecar.istio.io/inject
// and sidecarkit.io/inject). known says whether an annotation may set a
// helper's flag (nil: every flag accepted). It never panics, whatever the input.
func Parse(ann, labels map[string]string, known func(helper, flag string) error) Settings {
	s := Settings{Flags: map[string][]Flag{}, Vault: Vault{VolumePath: "/vault/secrets"}}
	bad := func(key, val, format string, args ...any) {
		s.Problems = append(s.Problems, fmt.Errorf("annotation %s=%q: %s", key, clip(val), fmt.Sprintf(format, args...)))
	}
	// badFlag never repeats the value: a flag annotation may hold a secret.
	badFlag := func(key, format string, args ...any) {
		s.Problems = append(s.Problems, fmt.Errorf("annotation %s: %s", key, fmt.Sprintf(format, args...)))
	}
	boolOf := func(key, val string) (bool, bool) {
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			bad(key, val, "want true or false")
			return false, false
		}
		return b, true
	}
	refuse := func(key, reason string) { s.Refused = append(s.Refused, Refusal{Key: key, Reason: reason}) }

	// The pod's own inject choice: sidecarkit's key wins over Istio's; a
	// label counts as an annotation (Istio moved its key to a label), and a
	// label wins over an annotation, as in Istio.
	pick := func(key string) (string, string, bool) {
		if v, ok := labels[key]; ok {
			return v, "label " + key, true
		}
		v, ok := ann[key]
		return v, "annotation " + key, ok
	}
	if v, src, ok := pick(Inject); ok {
		if b, ok := boolOf(src, v); ok {
			s.Inject, s.InjectSource = &b, src
		}
	}
	if v, src, ok := pick(IstioInject); ok {
		if b, ok := boolOf(src, v); ok {
			s.MeshOff = !b
			if s.Inject == nil && b {
				s.Inject, s.InjectSource = &b, src
			}
		}
	}

	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	files := map[string]*VaultFileSpec{}
	file := func(name string) *VaultFileSpec {
		f := files[name]
		if f == nil {
			f = &VaultFileSpec{Name: name}
			files[name] = f
		}
		return f
	}
	for _, key := range keys {
		val := ann[key]
		switch {
		case key == Inject || key == IstioInject:
			// read above
		case key == InjectHelpers:
			s.Helpers = []string{}
			seen := map[string]bool{}
			for _, h := range splitList(val) {
				if !contains(Helpers, h) {
					bad(key, val, "unknown helper %q (want some of %s)", h, strings.Join(Helpers, ", "))
					continue
				}
				if !seen[h] {
					seen[h] = true
					s.Helpers = append(s.Helpers, h)
				}
			}
		case key == LogDir || key == ConfigDir:
			p := strings.TrimSpace(val)
			if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
				bad(key, val, "want an absolute, clean directory path")
				continue
			}
			if key == LogDir {
				s.LogDir = p
			} else {
				s.ConfigDir = p
			}
		case key == Status || key == AmbassadorYAML:
			// written by the injector; the caller checks Status for idempotence
		case strings.HasSuffix(strings.SplitN(key, "/", 2)[0], ".sidecarkit.io") && strings.Contains(key, FlagSuffix):
			helper, fl, _ := strings.Cut(key, FlagSuffix)
			if !contains(append([]string{"initnet"}, Helpers...), helper) {
				badFlag(key, "unknown helper %q in the key (want initnet, %s)", helper, strings.Join(Helpers, ", "))
				continue
			}
			if !flagName.MatchString(fl) {
				badFlag(key, "%q is not a flag name", fl)
				continue
			}
			if known != nil {
				if err := known(helper, fl); err != nil {
					badFlag(key, "%v", err)
					continue
				}
			}
			if strings.ContainsAny(val, "\x00\n") {
				badFlag(key, "a flag value cannot hold a newline or NUL")
				continue
			}
			s.Flags[helper] = append(s.Flags[helper], Flag{Name: fl, Value: val, Key: key})
		case key == "sidecarkit.io" || strings.HasPrefix(key, "sidecarkit.io/"):
			bad(key, val, "unknown sidecarkit annotation (want %s, %s, %s, %s or <helper>.sidecarkit.io/<flag>)", Inject, InjectHelpers, LogDir, ConfigDir)

		case key == IstioIncludeInbound:
			l, ok := portsOrStar(val)
			if !ok {
				bad(key, val, `want "*", "" or comma-separated ports 1-65535`)
				continue
			}
			s.IncludeInbound = &l
		case key == IstioExcludeInbound || key == IstioExcludeOutPorts:
			l, ok := portsOrStar(val)
			if !ok || (len(l) == 1 && l[0] == "*") {
				bad(key, val, "want comma-separated ports 1-65535")
				continue
			}
			if key == IstioExcludeInbound {
				s.ExcludeInbound = l
			} else {
				s.ExcludeOutboundPorts = l
			}
		case key == IstioIncludeOutCIDRs:
			l, ok := cidrsOrStar(val, true)
			if !ok {
				bad(key, val, `want "*", "" or comma-separated CIDRs (10.0.0.0/8)`)
				continue
			}
			s.IncludeOutboundCIDRs = &l
		case key == IstioExcludeOutCIDRs:
			l, ok := cidrsOrStar(val, false)
			if !ok {
				bad(key, val, "want comma-separated CIDRs (10.0.0.0/8)")
				continue
			}
			s.ExcludeOutboundCIDRs = l
		case key == IstioProxyCPU || key == IstioProxyMemory || key == IstioProxyCPULimit || key == IstioProxyMemLimit:
			q, err := resource.ParseQuantity(strings.TrimSpace(val))
			if err != nil || q.Sign() <= 0 {
				bad(key, val, "want a positive Kubernetes quantity (100m, 64Mi)")
				continue
			}
			res := "cpu"
			if key == IstioProxyMemory || key == IstioProxyMemLimit {
				res = "memory"
			}
			m := &s.ProxyRequests
			if key == IstioProxyCPULimit || key == IstioProxyMemLimit {
				m = &s.ProxyLimits
			}
			if *m == nil {
				*m = map[string]resource.Quantity{}
			}
			(*m)[res] = q
		case key == IstioProxyConfig:
			var pc map[string]any
			if err := yaml.Unmarshal([]byte(val), &pc); err != nil {
				bad(key, val, "not a YAML/JSON ProxyConfig object: %v", err)
				continue
			}
			pk := make([]string, 0, len(pc))
			for k := range pc {
				pk = append(pk, k)
			}
			sort.Strings(pk)
			for _, k := range pk {
				if k != "holdApplicationUntilProxyStarts" {
					refuse(key+"#"+k, "ProxyConfig field not supported (only holdApplicationUntilProxyStarts is)")
					continue
				}
				b, ok := pc[k].(bool)
				if !ok {
					bad(key, val, "holdApplicationUntilProxyStarts: want true or false")
					continue
				}
				s.HoldApplication = &b
			}
		case strings.HasPrefix(key, "sidecar.istio.io/") || strings.HasPrefix(key, "traffic.sidecar.istio.io/") ||
			strings.HasPrefix(key, "proxy.istio.io/") || strings.HasPrefix(key, "status.sidecar.istio.io/"):
			refuse(key, "Istio annotation not supported by sidecarkit (see injector/README.md for the supported ones)")

		case key == VaultInject:
			if b, ok := boolOf(key, val); ok {
				s.Vault.Inject = &b
			}
		case key == VaultRole:
			s.Vault.Role = strings.TrimSpace(val)
		case key == VaultService:
			s.Vault.Addr = strings.TrimSpace(val)
		case key == VaultPrePopulateOnly:
			if b, ok := boolOf(key, val); ok {
				s.Vault.PrePopulateOnly = b
			}
		case key == VaultInitFirst:
			if b, ok := boolOf(key, val); ok {
				s.Vault.InitFirst = b
			}
		case key == VaultVolumePath:
			p := strings.TrimSpace(val)
			if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
				bad(key, val, "want an absolute, clean directory path")
				continue
			}
			s.Vault.VolumePath = p
		case strings.HasPrefix(key, VaultSecret), strings.HasPrefix(key, VaultTemplate),
			strings.HasPrefix(key, VaultFile), strings.HasPrefix(key, VaultCommand):
			var prefix string
			for _, p := range []string{VaultSecret, VaultTemplate, VaultFile, VaultCommand} {
				if strings.HasPrefix(key, p) {
					prefix = p
				}
			}
			name := strings.TrimPrefix(key, prefix)
			if !fileName.MatchString(name) || name == "." || name == ".." {
				bad(key, val, "the name after %s must be a file name (letters, digits, . _ -)", strings.TrimPrefix(prefix, VaultPrefix))
				continue
			}
			f := file(name)
			switch prefix {
			case VaultSecret:
				f.Path = strings.TrimSpace(val)
				if f.Path == "" || strings.ContainsAny(f.Path, ",=\n") {
					bad(key, val, "want a Vault path without , = or newlines (PATH#KEY renders one key)")
				}
			case VaultTemplate:
				f.Template = val
			case VaultFile:
				fn := strings.TrimSpace(val)
				if !fileName.MatchString(fn) || fn == "." || fn == ".." {
					bad(key, val, "want a file name (letters, digits, . _ -), no directories")
					continue
				}
				f.File = fn
			case VaultCommand:
				f.Command = strings.TrimSpace(val)
			}
		case strings.HasPrefix(key, VaultPrefix):
			refuse(key, "vault-k8s annotation not supported by sidecarkit (see injector/README.md for the supported ones)")
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := files[n]
		if f.Path == "" {
			s.Problems = append(s.Problems, fmt.Errorf("annotations for vault secret %q without %s%s (the path to read)", n, VaultSecret, n))
			continue
		}
		if f.File == "" {
			f.File = f.Name
		}
		s.Vault.Files = append(s.Vault.Files, *f)
	}
	return s
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// portsOrStar parses "*", "" or a comma-separated list of ports into their
// canonical strings.
func portsOrStar(v string) ([]string, bool) {
	if strings.TrimSpace(v) == "*" {
		return []string{"*"}, true
	}
	out := []string{}
	for _, p := range splitList(v) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, false
		}
		out = append(out, strconv.Itoa(n))
	}
	return out, true
}

func cidrsOrStar(v string, star bool) ([]string, bool) {
	if star && strings.TrimSpace(v) == "*" {
		return []string{"*"}, true
	}
	out := []string{}
	for _, p := range splitList(v) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, false
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, pfx.Masked().String())
	}
	return out, true
}

// clip keeps error messages short whatever the annotation's size.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
