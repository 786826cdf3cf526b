package ambassador_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// Kubernetes auth against Vault's real kubernetes auth method. There is no
// Kubernetes API server here, so the TokenReview endpoint Vault calls is an
// httptest fake that accepts exactly the JWT the test wrote to the
// service-account token file.
func TestKubernetesAuth(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	jwt := enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + enc(map[string]any{
		"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:app",
		"kubernetes.io/serviceaccount/namespace": "default", "kubernetes.io/serviceaccount/service-account.name": "app",
		"kubernetes.io/serviceaccount/service-account.uid": "uid-1",
	}) + "." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("sig-%d", time.Now().UnixNano())))
	secret("service account jwt", jwt)
	var reviews atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tr struct {
			Spec struct{ Token string } `json:"spec"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &tr)
		reviews.Add(1)
		status := map[string]any{"authenticated": false}
		if r.URL.Path == "/apis/authentication.k8s.io/v1/tokenreviews" && tr.Spec.Token == jwt {
			status = map[string]any{"authenticated": true, "user": map[string]any{"username": "system:serviceaccount:default:app", "uid": "uid-1", "groups": []string{"system:serviceaccounts"}}}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
	}))
	defer api.Close()
	cli(t, v, "auth", "enable", "kubernetes")
	cli(t, v, "write", "auth/kubernetes/config", "kubernetes_host="+api.URL, "disable_local_ca_jwt=true")
	writeFile(t, filepath.Join(dir, "app.hcl"), appPolicy)
	cli(t, v, "policy", "write", "app", filepath.Join(dir, "app.hcl"))
	cli(t, v, "write", "auth/kubernetes/role/app", "bound_service_account_names=app", "bound_service_account_namespaces=default", "token_policies=app", "token_ttl=1h")
	val := secret("k8s value", fmt.Sprintf("k8s-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/app", "password="+val)

	jwtFile := writeFile(t, filepath.Join(dir, "token"), jwt)
	out := t.TempDir()
	a := startAmb(t, []string{"--kubernetes-role", "app", "--kubernetes-jwt-file", jwtFile, "--secret", out + "/pw=secret/app#password"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	if got := readFile(t, out+"/pw"); got != val {
		t.Fatalf("pw: %q", got)
	}
	if reviews.Load() == 0 {
		t.Fatal("Vault never asked the TokenReview API")
	}
	if !strings.Contains(a.logText(), `"method":"kubernetes"`) {
		t.Fatal("not logged in with kubernetes auth")
	}
}
