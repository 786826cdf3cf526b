package inject

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/injector/annotations"
)

// TestHelpersAcceptInjectedArgs: every command line the injector writes is
// accepted by the real helper (`<helper> validate`; initnet `--dry-run`,
// which prints the rules it would install), built from the sibling modules.
// The ambassador's --config (templates) is the annotation's YAML, written
// to a file as the downward-API volume would.
func TestHelpersAcceptInjectedArgs(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not on PATH")
	}
	pod := barePod(loadDeployment(t, "native"))
	pod.Annotations = map[string]string{}
	for k, v := range manifestAnnotations {
		pod.Annotations[k] = v
	}
	pod.Annotations[annotations.VaultSecret+"conf"] = "secret/data/conf"
	pod.Annotations[annotations.VaultTemplate+"conf"] = `{{ with secret "secret/data/conf" }}{{ .Data.data.x }}{{ end }}`
	pod.Annotations[annotations.IstioExcludeOutCIDRs] = "10.96.0.0/12"
	// validate checks the secrets' directory exists and is a tmpfs (as the
	// injected emptyDir with medium: Memory is): a real one here.
	shm, err := os.MkdirTemp("/dev/shm", "injector-test-")
	if err != nil {
		t.Fatalf("need a tmpfs at /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	pod.Annotations[annotations.VaultVolumePath] = shm
	res, err := Inject(Request{Pod: pod, Namespace: "default", Major: 1, Minor: 34}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "ambassador.yaml")
	if err := os.WriteFile(cfg, []byte(res.Pod.Annotations[annotations.AmbassadorYAML]), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Pod.Spec.InitContainers {
		args := []string{"run", "./cmd/" + c.Name}
		if c.Name == "initnet" {
			args = append(args, "--dry-run", "--ipv6=false")
		} else {
			args = append(args, "validate")
		}
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--config=") {
				a = "--config=" + cfg
			}
			args = append(args, a)
		}
		cmd := exec.Command(goBin, args...)
		cmd.Dir = filepath.Join("..", "..", c.Name)
		cmd.Env = append(os.Environ(), "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s rejects the injected args %q: %v\n%s", c.Name, c.Args, err, out)
		}
	}
}
