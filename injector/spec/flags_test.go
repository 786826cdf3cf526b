package spec

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// TestFlagsMatchHelpers: Flags is what each helper's own `--help` lists
// (built from the sibling modules of this repository), so an annotation
// can set exactly the flags the helper has.
func TestFlagsMatchHelpers(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not on PATH")
	}
	re := regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`)
	for helper, want := range Flags {
		t.Run(helper, func(t *testing.T) {
			cmd := exec.Command(goBin, "run", "./cmd/"+helper, "--help")
			cmd.Dir = filepath.Join("..", "..", helper)
			cmd.Env = append(os.Environ(), "GOWORK=off")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s --help: %v\n%s", helper, err, out)
			}
			var got []string
			for _, m := range re.FindAllStringSubmatch(string(out), -1) {
				got = append(got, m[1])
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s --help lists\n%q\nspec.Flags has\n%q", helper, got, want)
			}
		})
	}
}
