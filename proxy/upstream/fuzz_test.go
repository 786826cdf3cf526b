package upstream

import (
	"bytes"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzClusterYAML feeds cluster and route YAML (outside input) through the
// strict decoder and Validate; whatever validates must build a cluster.
func FuzzClusterYAML(f *testing.F) {
	f.Add([]byte("name: a\nendpoints: [{address: 127.0.0.1:1, weight: 3, labels: {v: '1'}}]\nsubsets: [{name: v1, labels: {v: '1'}}]\nlb_policy: least_request\n"))
	f.Add([]byte("name: d\ndns: {name: localhost, port: 80, refresh: 1s}\noutlier_detection: {consecutive_5xx: 2}\nretry_budget: {percent: 20}\n"))
	f.Add([]byte("name: x\nendpoints: [{address: '[::1]:8080'}]\ncircuit_breakers: {max_requests: 1}\nprotocol: http2\n"))
	f.Add([]byte("timeout: 1s\nretries: {attempts: 2, retry_on: ['5xx,reset'], per_try_timeout: 100ms}\nweighted_subsets: [{subset: v1, weight: 90}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var cc ClusterConfig
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if dec.Decode(&cc) == nil && cc.Validate() == nil && len(cc.Endpoints) > 0 && cc.TLS == nil {
			c, err := New(cc, Deps{})
			if err != nil {
				t.Fatalf("validated config did not build: %v", err)
			}
			c.Close()
		}
		var rp RoutePolicy
		dec = yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if dec.Decode(&rp) == nil {
			rp.Validate(nil)
		}
	})
}
