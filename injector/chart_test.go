package injector

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

const chart = "chart/sidecarkit-injector"

// TestHelmChart runs the real helm (built by `make testenv`): lint, then
// template with default and changed values, decoding the result strictly
// into the API types.
func TestHelmChart(t *testing.T) {
	helm := testenv.Binary(t, "helm")
	if out, err := exec.Command(helm, "lint", "--strict", chart).CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	render := func(args ...string) map[string]string {
		t.Helper()
		out, err := exec.Command(helm, append([]string{"template", "rel", chart, "--namespace", "mesh"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm template %q: %v\n%s", args, err, out)
		}
		docs := map[string]string{}
		for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
			if m := regexp.MustCompile(`(?m)^kind: (\w+)`).FindStringSubmatch(d); m != nil {
				docs[m[1]] = d
			}
		}
		return docs
	}
	docs := render()
	for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment", "MutatingWebhookConfiguration"} {
		if docs[k] == "" {
			t.Errorf("helm template: no %s", k)
		}
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(docs["Deployment"]), &d); err != nil {
		t.Fatal(err)
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--webhook-config=sidecarkit-injector-mesh") || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--tls-cert-file") }) {
		t.Errorf("default args %q", args)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict([]byte(docs["MutatingWebhookConfiguration"]), &mwc); err != nil {
		t.Fatal(err)
	}
	if p := mwc.Webhooks[0].FailurePolicy; p == nil || *p != admissionregistrationv1.Ignore {
		t.Errorf("failurePolicy %v", p)
	}
	// Every flag the chart passes is one the injector knows: parse them.
	if err := parseArgs(args); err != nil {
		t.Errorf("the chart's args do not parse: %v", err)
	}

	docs = render("--set", "webhook.failurePolicy=Fail", "--set", "tls.secretName=inj-tls", "--set", "tls.caBundle=Q0E=", "--set", "vaultAddr=https://vault:8200")
	d = appsv1.Deployment{}
	if err := yaml.UnmarshalStrict([]byte(docs["Deployment"]), &d); err != nil {
		t.Fatal(err)
	}
	args = d.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--webhook-config=", "--tls-cert-file=/etc/sidecarkit/tls/tls.crt", "--vault-addr=https://vault:8200"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if err := parseArgs(args); err != nil {
		t.Errorf("the chart's args do not parse: %v", err)
	}
	mwc = admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict([]byte(docs["MutatingWebhookConfiguration"]), &mwc); err != nil {
		t.Fatal(err)
	}
	if p := mwc.Webhooks[0].FailurePolicy; *p != admissionregistrationv1.Fail || string(mwc.Webhooks[0].ClientConfig.CABundle) != "CA" {
		t.Errorf("failurePolicy %v caBundle %q", *p, mwc.Webhooks[0].ClientConfig.CABundle)
	}
	if out, err := exec.Command(helm, "template", "rel", chart, "--set", "webhook.failurePolicy=Maybe").CombinedOutput(); err == nil || !strings.Contains(string(out), "must be Ignore or Fail") {
		t.Errorf("a bad failurePolicy renders: %v %s", err, out)
	}
}
