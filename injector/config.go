// Package injector is sidecarkit's mutating admission webhook: it puts the
// helpers into pods (see README.md). The decisions live in inject (pure),
// the AdmissionReview handling in webhook; this package is the process: its
// configuration, TLS, the cluster clients and the offline `inject` command.
package injector

import (
	"net"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sidecarkit/sidecarkit/injector/annotations"
	"github.com/sidecarkit/sidecarkit/injector/inject"
	"github.com/sidecarkit/sidecarkit/injector/spec"
	"github.com/sidecarkit/sidecarkit/shared/config"
	"github.com/sidecarkit/sidecarkit/shared/version"
)

// Config is the injector's whole configuration.
type Config struct {
	Listen        string
	TLSCert       string
	TLSKey        string
	Service       string
	Namespace     string
	TLSSANs       []string
	WebhookConfig string
	Kubeconfig    string
	K8sVersion    string

	Images
	PullPolicy     string
	DefaultHelpers []string
	SkipNamespaces []string
	VaultAddr      string
	VaultAudience  string
	ConsulAddr     string
	ESURL          string

	major, minor int // from K8sVersion
}

// Images are the helper images to inject.
type Images struct {
	Proxy, Ambassador, Configsync, Adapter string
}

// Bind registers the options the webhook and `inject` share.
func bindInject(l *config.Loader, c *Config) {
	l.String(&c.Proxy, "proxy-image", "sidecarkit/proxy:latest", "image of the proxy and initnet")
	l.String(&c.Ambassador, "ambassador-image", "sidecarkit/ambassador:latest", "image of the ambassador")
	l.String(&c.Configsync, "configsync-image", "sidecarkit/configsync:latest", "image of configsync")
	l.String(&c.Adapter, "adapter-image", "sidecarkit/adapter:latest", "image of the adapter")
	l.String(&c.PullPolicy, "image-pull-policy", "", "imagePullPolicy of injected containers: Always, IfNotPresent, Never, or empty (Kubernetes' default)")
	l.Strings(&c.DefaultHelpers, "default-helpers", []string{"proxy"}, "helpers injected into a selected pod without "+annotations.InjectHelpers)
	l.String(&c.VaultAddr, "vault-addr", "", "Vault address given to the ambassador unless the pod sets "+annotations.VaultService)
	l.String(&c.VaultAudience, "vault-audience", "vault", "audience of the ServiceAccount token the ambassador logs in with")
	l.String(&c.ConsulAddr, "consul-addr", "", "Consul address given to configsync unless the pod sets configsync.sidecarkit.io/consul-addr")
	l.String(&c.ESURL, "es-url", "", "Elasticsearch bulk API URL given to the adapter unless the pod sets adapter.sidecarkit.io/es-url")
	l.String(&c.K8sVersion, "kubernetes-version", "", "the cluster's version (1.29+: native sidecars); empty: asked from the apiserver (inject: 1.34)")
}

// Bind registers every option of the webhook server.
func Bind(l *config.Loader, c *Config) {
	l.String(&c.Listen, "listen", ":9443", "HTTPS listen address of the webhook")
	l.String(&c.TLSCert, "tls-cert-file", "", "serving certificate (PEM), reloaded when it changes (cert-manager); empty: generate one at start")
	l.String(&c.TLSKey, "tls-key-file", "", "key of --tls-cert-file")
	l.String(&c.Service, "service", "sidecarkit-injector", "the injector's Service name, for the generated certificate's names")
	l.String(&c.Namespace, "namespace", "sidecarkit-system", "the injector's namespace: never injected, and in the generated certificate's names")
	l.Env("namespace", "POD_NAMESPACE")
	l.Strings(&c.TLSSANs, "tls-san", nil, "extra DNS names or IPs in the generated certificate")
	l.String(&c.WebhookConfig, "webhook-config", "sidecarkit-injector", "MutatingWebhookConfiguration whose caBundle gets the generated CA (empty: none)")
	l.String(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file (empty: in-cluster)")
	l.Env("kubeconfig", "KUBECONFIG")
	l.Strings(&c.SkipNamespaces, "skip-namespaces", []string{"kube-system", "kube-public", "kube-node-lease"}, "namespaces never injected (besides --namespace)")
	bindInject(l, c)
}

var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate checks every option.
func Validate(l *config.Loader, c *Config) error {
	var p config.Problems
	validateInject(&p, c)
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		p.Add("listen", c.Listen, "want host:port (%v)", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		p.Addf("tls-cert-file and tls-key-file go together")
	}
	if !dnsName.MatchString(c.Service) {
		p.Add("service", c.Service, "not a Service name")
	}
	if !dnsName.MatchString(c.Namespace) {
		p.Add("namespace", c.Namespace, "not a namespace name")
	}
	return p.Err()
}

func validateInject(p *config.Problems, c *Config) {
	switch corev1.PullPolicy(c.PullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		p.Add("image-pull-policy", c.PullPolicy, "want Always, IfNotPresent, Never or empty")
	}
	for _, h := range c.DefaultHelpers {
		if !slices.Contains(annotations.Helpers, h) {
			p.Add("default-helpers", h, "unknown helper (want some of %s)", strings.Join(annotations.Helpers, ", "))
		}
	}
	for k, v := range map[string]string{"proxy-image": c.Proxy, "ambassador-image": c.Ambassador, "configsync-image": c.Configsync, "adapter-image": c.Adapter} {
		if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\n") {
			p.Add(k, v, "not an image reference")
		}
	}
	if c.K8sVersion != "" {
		var ok bool
		c.major, c.minor, ok = parseVersion(c.K8sVersion)
		if !ok {
			p.Add("kubernetes-version", c.K8sVersion, "want MAJOR.MINOR, e.g. 1.34")
		}
	}
}

// parseVersion reads "1.34", "v1.34.3", or the apiserver's major/minor ("34+").
func parseVersion(v string) (int, int, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	ma, ok1 := leadingInt(parts[0])
	mi, ok2 := leadingInt(parts[1])
	return ma, mi, ok1 && ok2
}

func leadingInt(s string) (int, bool) {
	n, digits := 0, 0
	for _, r := range s {
		if r < '0' || r > '9' || digits > 6 {
			break
		}
		n = n*10 + int(r-'0')
		digits++
	}
	return n, digits > 0
}

// options builds the core's options.
func (c *Config) options() inject.Options {
	return inject.Options{
		ProxyImage: c.Proxy, AmbassadorImage: c.Ambassador, ConfigsyncImage: c.Configsync, AdapterImage: c.Adapter,
		PullPolicy:     corev1.PullPolicy(c.PullPolicy),
		DefaultHelpers: c.DefaultHelpers,
		SkipNamespaces: append([]string{c.Namespace}, c.SkipNamespaces...),
		VaultAddr:      c.VaultAddr, VaultAudience: c.VaultAudience, ConsulAddr: c.ConsulAddr, ESURL: c.ESURL,
		Known:   spec.CheckFlag,
		Version: version.Get("injector").Version,
	}
}
