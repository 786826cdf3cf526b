package upstream

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestReadmeYAML keeps the README's cluster and route examples valid.
func TestReadmeYAML(t *testing.T) {
	b, _ := os.ReadFile("README.md")
	blocks := strings.Split(string(b), "```yaml\n")
	cl := strings.Split(blocks[1], "```")[0]
	var c struct {
		Clusters []ClusterConfig `yaml:"clusters"`
	}
	dec := yaml.NewDecoder(strings.NewReader(cl))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	for _, cc := range c.Clusters {
		if err := cc.Validate(); err != nil {
			t.Error(err)
		}
	}
	rp := strings.Split(blocks[2], "```")[0]
	var p RoutePolicy
	dec = yaml.NewDecoder(strings.NewReader(rp))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(&c.Clusters[0]); err != nil {
		t.Error(err)
	}
}
