package injector

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sidecarkit/sidecarkit/injector/annotations"
	"github.com/sidecarkit/sidecarkit/injector/inject"
	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// InjectCommand is `injector inject -f FILE`: like istioctl kube-inject, it
// prints the manifests in FILE ("-": stdin) with the helpers injected into
// every pod and pod template, as the webhook would in a namespace labelled
// sidecarkit.io/injection=enabled. Warnings go to stderr. Exit 0, 1 (a pod
// denied, with why) or 2 (bad flags).
func InjectCommand(args, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c Config
	var file string
	l := config.NewLoader("injector")
	l.String(&file, "filename", "", "manifest file to inject (YAML, several documents allowed); - for stdin")
	bindInject(l, &c)
	args = expandShort(args)
	rest, err := l.Parse(args, env)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "Usage: injector inject -f FILE [flags]")
		l.Usage(stdout)
		return app.ExitOK
	}
	var p config.Problems
	if err != nil {
		p = append(p, err)
	}
	if len(rest) > 0 {
		p.Addf("unexpected arguments: %q", rest)
	}
	if file == "" {
		p.Add("filename", "", "required (-f FILE, or -f - for stdin)")
	}
	if c.K8sVersion == "" {
		c.K8sVersion = "1.34"
	}
	c.Namespace = "sidecarkit-system"
	validateInject(&p, &c)
	if err := p.Err(); err != nil {
		fmt.Fprintf(stderr, "injector inject: invalid configuration:\n")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  - %s\n", line)
		}
		return app.ExitConfig
	}
	var data []byte
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		fmt.Fprintf(stderr, "injector inject: %v\n", err)
		return app.ExitRuntime
	}
	out, warnings, err := injectManifests(data, c)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "Warning:", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "injector inject: %s: %v\n", file, err)
		return app.ExitRuntime
	}
	stdout.Write(out)
	return app.ExitOK
}

// expandShort turns -f X / -f=X into --filename.
func expandShort(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == "-f":
			a = "--filename"
		case strings.HasPrefix(a, "-f="):
			a = "--filename=" + a[3:]
		}
		out = append(out, a)
	}
	return out
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// templatePath is where each kind keeps its pod (template).
var templatePath = map[string][]string{
	"Pod":         nil,
	"Deployment":  {"spec", "template"},
	"StatefulSet": {"spec", "template"},
	"DaemonSet":   {"spec", "template"},
	"ReplicaSet":  {"spec", "template"},
	"Job":         {"spec", "template"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template"},
}

func injectManifests(data []byte, c Config) ([]byte, []string, error) {
	o := c.options()
	o.SkipNamespaces = []string{"kube-system"}
	major, minor, _ := parseVersion(c.K8sVersion)
	var out bytes.Buffer
	var warnings []string
	for i, doc := range docSep.Split(string(data), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, warnings, fmt.Errorf("document %d: %w", i+1, err)
		}
		if obj == nil {
			continue
		}
		kind, _ := obj["kind"].(string)
		name := kind + " " + nestedString(obj, "metadata", "name")
		if p, ok := templatePath[kind]; ok {
			holder, key := obj, ""
			if p == nil {
				key = ""
			} else {
				for _, k := range p[:len(p)-1] {
					next, _ := holder[k].(map[string]any)
					if next == nil {
						return nil, warnings, fmt.Errorf("document %d (%s): no %s", i+1, name, strings.Join(p, "."))
					}
					holder = next
				}
				key = p[len(p)-1]
			}
			var podObj any = obj
			if key != "" {
				podObj = holder[key]
			}
			raw, err := json.Marshal(podObj)
			if err != nil {
				return nil, warnings, err
			}
			var pod corev1.Pod
			if err := json.Unmarshal(raw, &pod); err != nil {
				return nil, warnings, fmt.Errorf("document %d (%s): %w", i+1, name, err)
			}
			ns := nestedString(obj, "metadata", "namespace")
			if ns == "" {
				ns = "default"
			}
			res, err := inject.Inject(inject.Request{Pod: &pod, Namespace: ns,
				NamespaceLabels: map[string]string{annotations.NamespaceLabel: "enabled"}, Major: major, Minor: minor}, o)
			if err != nil {
				return nil, warnings, fmt.Errorf("document %d (%s): %w", i+1, name, err)
			}
			for _, w := range res.Warnings {
				warnings = append(warnings, name+": "+w)
			}
			if res.Skip == "" {
				mut, err := json.Marshal(res.Pod)
				if err != nil {
					return nil, warnings, err
				}
				var m map[string]any
				if err := json.Unmarshal(mut, &m); err != nil {
					return nil, warnings, err
				}
				if key == "" {
					delete(m, "status")
					m["apiVersion"], m["kind"] = obj["apiVersion"], obj["kind"]
					obj = m
				} else {
					delete(m, "status")
					delete(m, "apiVersion")
					delete(m, "kind")
					holder[key] = m
				}
			} else {
				warnings = append(warnings, name+": not injected: "+res.Skip)
			}
		}
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, warnings, err
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(y)
	}
	return out.Bytes(), warnings, nil
}

func nestedString(m map[string]any, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}
