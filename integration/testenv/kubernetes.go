package testenv

// A real Kubernetes v1.34.3 for tests: etcd and kube-apiserver (+ controller-
// manager) for webhook and discovery tests, or the same plus a node —
// a private containerd, the kubelet, kube-proxy and CoreDNS — that runs pods.
//
// Everything runs inside one network namespace the harness creates (a veth
// pair with both ends inside, the node IP on it and a default route to an
// address nobody owns), so no pod or cluster traffic can leave it, and two
// clusters from two test binaries never share a port. The test process
// reaches the apiserver through a loopback forwarder (Server, Kubeconfig),
// pods and Services through DialContext/HTTPClient, and can serve the
// apiserver or pods through Listen. The recipe, with every quirk of this
// machine kind, is ../shared/notes/kubernetes-on-this-machine.md.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// KubernetesVersion is the version `make testenv` builds.
const KubernetesVersion = "v1.34.3"

// Fixed addresses inside every cluster's own network namespace.
const (
	kubeNodeIP     = "10.77.0.2"
	kubeNodeGW     = "10.77.0.1" // owned by nobody: non-local traffic dies here
	kubePodCIDR    = "10.88.0.0/16"
	kubeSvcCIDR    = "10.96.0.0/16"
	kubeAPISvcIP   = "10.96.0.1"
	kubeDNSIP      = "10.96.0.10"
	kubeNodeName   = "sknode"
	kubeAPIPort    = 6443
	kubeSandboxImg = "registry.k8s.io/pause:3.10"
)

// Kubernetes is a running cluster owned by one test. It is torn down
// completely at cleanup: processes, containers, mounts, cgroups, network
// namespaces and its directory.
type Kubernetes struct {
	Kubeconfig string // admin kubeconfig for the test process (server = Server)
	Server     string // https://127.0.0.1:port, a forwarder into the netns
	CAPEM      []byte // the cluster CA (apiserver serving cert, client certs, IssueCert)
	NetNS      string // name of the network namespace (/var/run/netns/<name>)
	NodeIP     string // the node's (and apiserver's) address inside the netns
	NodeName   string // the node's name when StartKubernetes started one
	Dir        string // state directory (certs, configs, data)

	t         testing.TB
	netnsPath string
	ca        *x509.Certificate
	caKey     *ecdsa.PrivateKey
	kubectl   string
	ctrSock   string // the private containerd's socket (node only)
	cgroup    string // the kubelet's cgroupRoot (node only)
	procs     map[string]*Process
	inner     string // in-netns admin kubeconfig (server https://127.0.0.1:6443)
	apiGet    func(path string) ([]byte, int, error)
}

// StartKubeControlPlane starts etcd, kube-apiserver and kube-controller-
// manager (so namespaces get their default ServiceAccount and tokens work)
// and returns when the apiserver is ready and default/default exists. Pods
// stay Pending: there is no node (use StartKubernetes).
func StartKubeControlPlane(t testing.TB) *Kubernetes {
	t.Helper()
	k := newKubernetes(t)
	k.startControlPlane(false)
	return k
}

// StartKubernetes starts a whole single-node cluster: the control plane (with
// the scheduler), a private containerd, the kubelet, kube-proxy (iptables,
// inside the netns) and CoreDNS at 10.96.0.10, and returns when the node is
// Ready and CoreDNS answers. Images come from the local Docker engine through
// ImportImages (use imagePullPolicy: Never); there is no registry.
func StartKubernetes(t testing.TB) *Kubernetes {
	t.Helper()
	k := newKubernetes(t)
	start := time.Now()
	k.startControlPlane(true)
	k.startNode()
	t.Logf("kubernetes %s: node %s Ready in %v (netns %s, dir %s)", KubernetesVersion, k.NodeName, time.Since(start).Round(10*time.Millisecond), k.NetNS, k.Dir)
	return k
}

func newKubernetes(t testing.TB) *Kubernetes {
	t.Helper()
	RequireRoot(t)
	k := &Kubernetes{t: t, NodeIP: kubeNodeIP, procs: map[string]*Process{}}
	for _, tool := range [][2]string{{"ip", "iproute2"}, {"nsenter", "util-linux"}} {
		Tool(t, tool[0], tool[1])
	}
	// Binaries first: a missing build must say so before anything is created.
	k.kubectl = k.bin("kubectl")
	for _, b := range []string{"kube-apiserver", "kube-controller-manager"} {
		k.bin(b)
	}
	Binary(t, "etcd")
	// A short directory: unix socket paths (containerd) must stay < 108 bytes.
	dir, err := os.MkdirTemp("", "skk-")
	if err != nil {
		t.Fatalf("kubernetes: state dir: %v", err)
	}
	k.Dir = dir
	k.NetNS = filepath.Base(dir)
	k.netnsPath = "/var/run/netns/" + k.NetNS
	// Registered first, so it runs last: after every process is gone.
	t.Cleanup(k.teardown)
	k.setupNetNS()
	return k
}

// bin returns the path of a Kubernetes binary from `make testenv`.
func (k *Kubernetes) bin(name string) string {
	k.t.Helper()
	p := filepath.Join(CacheDir(), "kubernetes", name)
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		Unavailable(k.t, "%s not built at %s: run `make testenv` (or `integration/testenv/build.sh kubernetes`)", name, p)
	}
	return p
}

func (k *Kubernetes) run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (k *Kubernetes) mustRun(name string, args ...string) string {
	k.t.Helper()
	out, err := k.run(name, args...)
	if err != nil {
		k.t.Fatalf("kubernetes: %v", err)
	}
	return out
}

// setupNetNS creates the cluster's network namespace: lo, and a veth pair
// with both ends inside carrying the node IP and a default route to an
// address nobody owns.
func (k *Kubernetes) setupNetNS() {
	k.t.Helper()
	k.mustRun("ip", "netns", "add", k.NetNS)
	ipn := func(args ...string) { k.t.Helper(); k.mustRun("ip", append([]string{"-n", k.NetNS}, args...)...) }
	ipn("link", "set", "lo", "up")
	// (type dummy is not available on every kernel; a veth pair always is)
	ipn("link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	ipn("addr", "add", kubeNodeIP+"/24", "dev", "eth0")
	ipn("link", "set", "eth0", "up")
	ipn("link", "set", "eth0p", "up")
	ipn("route", "add", "default", "via", kubeNodeGW, "dev", "eth0", "onlink")
}

// nsArgv wraps argv to run inside the cluster's network namespace. nsenter
// --net switches only the network namespace; `ip netns exec` would also
// remount /sys, hiding the cgroup mounts runc needs.
func (k *Kubernetes) nsArgv(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + k.netnsPath, "--"}, argv...)
}

// startProc starts a cluster process in the netns and waits until ready.
// Cleanup kills it (SIGKILL: the apiserver ignores SIGTERM for minutes when
// clients are attached; nothing here needs a graceful stop).
func (k *Kubernetes) startProc(name string, argv []string, ready func() error) *Process {
	k.t.Helper()
	p := NewProcess(k.t, name, k.nsArgv(argv...), nil, ready)
	k.t.Cleanup(p.Kill)
	k.procs[name] = p
	p.Start()
	return p
}

// withNetNS runs fn on an OS thread switched into the cluster's network
// namespace; sockets created by fn stay in that namespace.
func (k *Kubernetes) withNetNS(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(k.netnsPath)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := setns(target.Fd()); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", k.netnsPath, err)
	}
	ferr := fn()
	if err := setns(orig.Fd()); err != nil {
		// Leave the thread locked: Go discards it when this goroutine ends.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(fd uintptr) error { return unix.Setns(int(fd), unix.CLONE_NEWNET) }

// DialContext connects from inside the cluster's network namespace (to a pod
// IP, a ClusterIP, the node IP). addr must be an IP:port: names would be
// resolved by the host.
func (k *Kubernetes) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := k.withNetNS(func() error {
		var err error
		c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections start inside the cluster's
// network namespace (use IP addresses in URLs).
func (k *Kubernetes) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: k.DialContext, DisableKeepAlives: true}}
}

// Listen returns a TCP listener created inside the cluster's network
// namespace on the node IP and the address the apiserver and pods reach it
// at — for an admission webhook served by the test, or a peer for pods.
func (k *Kubernetes) Listen(t testing.TB) (net.Listener, string) {
	t.Helper()
	var l net.Listener
	err := k.withNetNS(func() error {
		var err error
		l, err = net.Listen("tcp", net.JoinHostPort(k.NodeIP, "0"))
		return err
	})
	if err != nil {
		t.Fatalf("kubernetes: listen in netns %s: %v", k.NetNS, err)
	}
	t.Cleanup(func() { l.Close() })
	return l, l.Addr().String()
}

// Exec runs a host program (vault, consul, curl...) inside the cluster's
// network namespace and returns its combined output; it fails the test on a
// non-zero exit.
func (k *Kubernetes) Exec(t testing.TB, env []string, argv ...string) string {
	t.Helper()
	out, err := k.ExecErr(env, argv...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// ExecErr is Exec returning the error instead of failing.
func (k *Kubernetes) ExecErr(env []string, argv ...string) (string, error) {
	a := k.nsArgv(argv...)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %v\n%s", k.NetNS, strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// Kubectl runs kubectl (v1.34.3 from `make testenv`) against the cluster and
// returns stdout; it fails the test on error, with stderr.
func (k *Kubernetes) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := k.KubectlErr("", args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// KubectlStdin is Kubectl with stdin (e.g. `apply -f -`).
func (k *Kubernetes) KubectlStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := k.KubectlErr(stdin, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// KubectlErr runs kubectl and returns stdout and an error carrying stderr.
func (k *Kubernetes) KubectlErr(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+k.Dir)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// IssueCert returns a serving certificate and key (PEM) signed by the
// cluster CA for the given DNS names and IPs — a webhook served through
// Listen can then use CAPEM as its caBundle.
func (k *Kubernetes) IssueCert(t testing.TB, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, h)
		}
	}
	c, key, err := k.sign(pkix.Name{CommonName: hosts[0]}, true, ips, names)
	if err != nil {
		t.Fatalf("kubernetes: issue cert: %v", err)
	}
	return c, key
}

// ---- PKI (Go's crypto/x509: no openssl, ECDSA P-256) ----

func (k *Kubernetes) initCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sidecarkit-testenv-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour * 365),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	k.ca, _ = x509.ParseCertificate(der)
	k.caKey = key
	k.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return nil
}

var serial struct {
	sync.Mutex
	n int64
}

func (k *Kubernetes) sign(subj pkix.Name, server bool, ips []net.IP, names []string) (certPEM, keyPEM []byte, err error) {
	return signWith(k.ca, k.caKey, subj, server, ips, names)
}

func signWith(ca *x509.Certificate, caKey *ecdsa.PrivateKey, subj pkix.Name, server bool, ips []net.IP, names []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial.Lock()
	serial.n++
	sn := big.NewInt(time.Now().UnixNano() + serial.n)
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: subj,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour * 365),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, BasicConstraintsValid: true,
		IPAddresses: ips, DNSNames: names,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func (k *Kubernetes) writeFile(rel string, data []byte) string {
	k.t.Helper()
	p := filepath.Join(k.Dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		k.t.Fatalf("kubernetes: %v", err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		k.t.Fatalf("kubernetes: %v", err)
	}
	return p
}

// pair issues a client (or server) certificate into pki/<name>.{crt,key}.
func (k *Kubernetes) pair(name string, subj pkix.Name, server bool, ips []net.IP, names []string) (crt, key string, certPEM, keyPEM []byte) {
	k.t.Helper()
	c, kk, err := k.sign(subj, server, ips, names)
	if err != nil {
		k.t.Fatalf("kubernetes: cert %s: %v", name, err)
	}
	return k.writeFile("pki/"+name+".crt", c), k.writeFile("pki/"+name+".key", kk), c, kk
}

func kubeconfigYAML(server string, ca, cert, key []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: sidecarkit
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: user
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: sidecarkit
  context: {cluster: sidecarkit, user: user}
current-context: sidecarkit
`, server, b64(ca), b64(cert), b64(key)))
}

// ---- control plane ----

func (k *Kubernetes) startControlPlane(withScheduler bool) {
	t := k.t
	t.Helper()
	if err := k.initCA(); err != nil {
		t.Fatalf("kubernetes: CA: %v", err)
	}
	caFile := k.writeFile("pki/ca.crt", k.CAPEM)
	kb, _ := x509.MarshalECPrivateKey(k.caKey)
	caKeyFile := k.writeFile("pki/ca.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	saKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sab, _ := x509.MarshalECPrivateKey(saKey)
	sapub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	saKeyFile := k.writeFile("pki/sa.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sab}))
	saPubFile := k.writeFile("pki/sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: sapub}))

	apiCrt, apiKey, _, _ := k.pair("apiserver", pkix.Name{CommonName: "kube-apiserver"}, true,
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(kubeNodeIP), net.ParseIP(kubeAPISvcIP)},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	_, _, adminCert, adminKey := k.pair("admin", pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}}, false, nil, nil)
	kcCrt, kcKey, _, _ := k.pair("apiserver-kubelet-client", pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}, false, nil, nil)
	_, _, cmCert, cmKey := k.pair("controller-manager", pkix.Name{CommonName: "system:kube-controller-manager"}, false, nil, nil)
	_, _, schCert, schKey := k.pair("scheduler", pkix.Name{CommonName: "system:kube-scheduler"}, false, nil, nil)
	// front-proxy CA and client: without them the controller-manager loops on
	// "missing content for CA bundle requestheader-client-ca-file".
	fpKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fpTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "front-proxy-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour * 365),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	fpDER, err := x509.CreateCertificate(rand.Reader, fpTmpl, fpTmpl, &fpKey.PublicKey, fpKey)
	if err != nil {
		t.Fatalf("kubernetes: front-proxy CA: %v", err)
	}
	fpCA, _ := x509.ParseCertificate(fpDER)
	fpCAFile := k.writeFile("pki/front-proxy-ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fpDER}))
	fpc, fpk, err := signWith(fpCA, fpKey, pkix.Name{CommonName: "front-proxy-client"}, false, nil, nil)
	if err != nil {
		t.Fatalf("kubernetes: front-proxy client: %v", err)
	}
	fpcFile, fpkFile := k.writeFile("pki/front-proxy-client.crt", fpc), k.writeFile("pki/front-proxy-client.key", fpk)

	inner := fmt.Sprintf("https://127.0.0.1:%d", kubeAPIPort)
	k.inner = k.writeFile("kubeconfig/admin-netns.conf", kubeconfigYAML(inner, k.CAPEM, adminCert, adminKey))
	cmConf := k.writeFile("kubeconfig/controller-manager.conf", kubeconfigYAML(inner, k.CAPEM, cmCert, cmKey))
	schConf := k.writeFile("kubeconfig/scheduler.conf", kubeconfigYAML(inner, k.CAPEM, schCert, schKey))

	// Clients of the netns: readiness checks from this process.
	adminPair, err := tls.X509KeyPair(adminCert, adminKey)
	if err != nil {
		t.Fatalf("kubernetes: admin pair: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(k.ca)
	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: k.DialContext, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{adminPair}}}}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: k.DialContext, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // healthz of components with self-signed serving certs
	get := func(c *http.Client, url string) func() error {
		return func() error {
			resp, err := c.Get(url)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("GET %s: HTTP %d: %.300s", url, resp.StatusCode, body)
			}
			return nil
		}
	}
	k.apiGet = func(path string) ([]byte, int, error) {
		resp, err := api.Get(inner + path)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return b, resp.StatusCode, err
	}

	start := time.Now()
	k.startProc("etcd", []string{Binary(t, "etcd"), "--name", "sk", "--data-dir", filepath.Join(k.Dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "sk=http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381",
		"--unsafe-no-fsync", "--log-level", "warn"},
		get(plain, "http://127.0.0.1:2379/health"))
	k.startProc("kube-apiserver", []string{k.bin("kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--advertise-address=" + kubeNodeIP, "--secure-port=" + strconv.Itoa(kubeAPIPort),
		"--tls-cert-file=" + apiCrt, "--tls-private-key-file=" + apiKey, "--client-ca-file=" + caFile,
		"--kubelet-client-certificate=" + kcCrt, "--kubelet-client-key=" + kcKey,
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPubFile, "--service-account-signing-key-file=" + saKeyFile,
		"--service-cluster-ip-range=" + kubeSvcCIDR,
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true",
		"--profiling=false",
		"--requestheader-client-ca-file=" + fpCAFile, "--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + fpcFile, "--proxy-client-key-file=" + fpkFile,
		"--v=1"},
		get(api, inner+"/readyz"))
	t.Logf("kubernetes: etcd + kube-apiserver ready in %v", time.Since(start).Round(10*time.Millisecond))

	k.startProc("kube-controller-manager", []string{k.bin("kube-controller-manager"),
		"--kubeconfig=" + cmConf, "--authentication-kubeconfig=" + cmConf, "--authorization-kubeconfig=" + cmConf,
		"--bind-address=127.0.0.1",
		"--root-ca-file=" + caFile, "--service-account-private-key-file=" + saKeyFile,
		"--cluster-signing-cert-file=" + caFile, "--cluster-signing-key-file=" + caKeyFile,
		"--use-service-account-credentials=true", "--service-cluster-ip-range=" + kubeSvcCIDR,
		"--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
		"--leader-elect=false", "--v=1"},
		get(plain, "https://127.0.0.1:10257/healthz"))
	if withScheduler {
		k.startProc("kube-scheduler", []string{k.bin("kube-scheduler"),
			"--kubeconfig=" + schConf, "--authentication-kubeconfig=" + schConf, "--authorization-kubeconfig=" + schConf,
			"--bind-address=127.0.0.1", "--leader-elect=false", "--v=1"},
			get(plain, "https://127.0.0.1:10259/healthz"))
	}

	// The forwarder: the test process's way to the apiserver.
	k.Server = k.forward(fmt.Sprintf("127.0.0.1:%d", kubeAPIPort))
	k.Kubeconfig = k.writeFile("kubeconfig/admin.conf", kubeconfigYAML(k.Server, k.CAPEM, adminCert, adminKey))

	// Ready for tests means ServiceAccounts work: default/default exists.
	k.waitFor("ServiceAccount default/default", time.Minute, func() error {
		_, code, err := k.apiGet("/api/v1/namespaces/default/serviceaccounts/default")
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	t.Logf("kubernetes: control plane ready in %v", time.Since(start).Round(10*time.Millisecond))
}

// forward listens on host loopback and pipes every connection to addr
// inside the netns; it returns the https URL.
func (k *Kubernetes) forward(addr string) string {
	k.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		k.t.Fatalf("kubernetes: forwarder: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = struct{}{}
		} else {
			delete(conns, c)
		}
	}
	k.t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := k.DialContext(context.Background(), "tcp", addr)
				if err != nil {
					return
				}
				defer u.Close()
				track(c, true)
				track(u, true)
				defer track(c, false)
				defer track(u, false)
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	return "https://" + l.Addr().String()
}

func (k *Kubernetes) waitFor(what string, d time.Duration, f func() error) {
	k.t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	k.t.Fatalf("kubernetes: %s not ready after %v: %v", what, d, err)
}

// ---- node ----

func (k *Kubernetes) startNode() {
	t := k.t
	t.Helper()
	k.NodeName = kubeNodeName
	containerd := Tool(t, "containerd", "containerd")
	Tool(t, "runc", "runc")
	ctr := Tool(t, "ctr", "containerd")
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		Unavailable(t, "CNI plugins missing (/usr/lib/cni/bridge): apt-get install -y containernetworking-plugins")
	}
	Tool(t, "iptables", "iptables")
	kubelet, kubeProxy, coredns := k.bin("kubelet"), k.bin("kube-proxy"), Binary(t, "coredns")
	RequireDocker(t)
	ensureImages(t, "pause")

	// Forwarding and bridge netfilter inside the netns (kube-proxy's rules
	// must see bridged pod traffic); the DNS address lives on lo.
	if _, err := k.run("modprobe", "br_netfilter"); err != nil {
		t.Logf("kubernetes: modprobe br_netfilter: %v (continuing: it may be built in)", err)
	}
	k.Exec(t, nil, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
	k.mustRun("ip", "-n", k.NetNS, "addr", "add", kubeDNSIP+"/32", "dev", "lo")

	// cgroupRoot unique per cluster: two kubelets never manage each other's
	// pods. The kubelet wants it to exist in every hierarchy.
	k.cgroup = "/" + k.NetNS
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h, k.cgroup)
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			t.Fatalf("kubernetes: cgroup %s: %v", d, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, _ := os.ReadFile(filepath.Join(h, f))
				os.WriteFile(filepath.Join(d, f), b, 0o644)
			}
		}
	}

	// containerd: a private instance (own root, state, socket, runc root).
	cd := filepath.Join(k.Dir, "containerd")
	k.ctrSock = filepath.Join(cd, "containerd.sock")
	def, err := exec.Command(containerd, "config", "default").Output()
	if err != nil {
		t.Fatalf("kubernetes: containerd config default: %v", err)
	}
	cfg, err := containerdConfig(string(def), cd, filepath.Join(k.Dir, "cni"))
	if err != nil {
		t.Fatalf("kubernetes: %v", err)
	}
	k.writeFile("containerd/config.toml", []byte(cfg))
	k.writeFile("cni/10-sidecarkit.conflist", []byte(fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, k.NetNS, kubePodCIDR, filepath.Join(k.Dir, "cni-ipam"))))
	k.startProc("containerd", []string{containerd, "--config", filepath.Join(cd, "config.toml")}, func() error {
		c, err := net.Dial("unix", k.ctrSock)
		if err != nil {
			return err
		}
		return c.Close()
	})
	// Runs before containerd is killed: pods' processes, shims, cni netns.
	t.Cleanup(func() { k.killPods(ctr) })

	// The sandbox image: our FROM-scratch pause under the name containerd
	// asks for.
	k.ImportImages(t, "sidecarkit/pause:latest")
	k.ctr(t, "images", "tag", "--force", "docker.io/sidecarkit/pause:latest", kubeSandboxImg)

	kubeletCrt, kubeletKeyPEM := k.mustPair("kubelet", pkix.Name{CommonName: "system:node:" + kubeNodeName, Organization: []string{"system:nodes"}})
	inner := fmt.Sprintf("https://127.0.0.1:%d", kubeAPIPort)
	kubeletConf := k.writeFile("kubeconfig/kubelet.conf", kubeconfigYAML(inner, k.CAPEM, kubeletCrt, kubeletKeyPEM))
	resolv := k.writeFile("kubelet/resolv.conf", []byte("nameserver "+kubeDNSIP+"\n"))
	os.MkdirAll(filepath.Join(k.Dir, "kubelet/manifests"), 0o755)
	kcfg := k.writeFile("kubelet/config.yaml", []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failSwapOn: false
failCgroupV1: false
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [%s]
resolvConf: %s
staticPodPath: %s
podLogsDir: %s
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
protectKernelDefaults: false
serializeImagePulls: false
maxPods: 60
syncFrequency: 10s
fileCheckFrequency: 5s
`, k.cgroup, kubeNodeIP, filepath.Join(k.Dir, "pki/ca.crt"), kubeDNSIP, resolv, filepath.Join(k.Dir, "kubelet/manifests"),
		filepath.Join(k.Dir, "pod-logs"), k.ctrSock, k.ctrSock)))
	k.startProc("kubelet", []string{kubelet, "--config=" + kcfg, "--kubeconfig=" + kubeletConf,
		"--root-dir=" + filepath.Join(k.Dir, "kubelet/root"), "--cert-dir=" + filepath.Join(k.Dir, "kubelet/pki"),
		"--hostname-override=" + kubeNodeName, "--node-ip=" + kubeNodeIP, "--v=1"},
		func() error { return k.nodeReady() })

	pcfg := k.writeFile("kube-proxy/config.yaml", []byte(fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, k.inner, kubePodCIDR, kubeNodeName)))
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: k.DialContext, DisableKeepAlives: true}}
	httpOK := func(url string) func() error {
		return func() error {
			resp, err := plain.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
			}
			return nil
		}
	}
	k.startProc("kube-proxy", []string{kubeProxy, "--config=" + pcfg, "--v=1"}, httpOK("http://127.0.0.1:10256/healthz"))

	// CoreDNS on the cluster DNS IP; no upstream on purpose: nothing may
	// leave the netns.
	corefile := k.writeFile("coredns/Corefile", []byte(fmt.Sprintf(`.:53 {
    bind %s
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
    loadbalance
}
`, kubeDNSIP, k.inner)))
	k.startProc("coredns", []string{coredns, "-conf", corefile}, httpOK("http://127.0.0.1:8181/ready"))
	// Runs first at cleanup: what the cluster looked like when a test failed.
	t.Cleanup(func() {
		if t.Failed() {
			pods, _ := k.KubectlErr("", "get", "pods", "-A", "-o", "wide")
			ev, _ := k.KubectlErr("", "get", "events", "-A", "--sort-by=.lastTimestamp")
			t.Logf("kubernetes: pods at failure:\n%s\nevents:\n%s", pods, lastLinesOf(ev, 40))
		}
	})
}

func lastLinesOf(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func (k *Kubernetes) mustPair(name string, subj pkix.Name) (certPEM, keyPEM []byte) {
	k.t.Helper()
	_, _, c, kk := k.pair(name, subj, false, nil, nil)
	return c, kk
}

// nodeReady reports whether the node has registered and is Ready.
func (k *Kubernetes) nodeReady() error {
	b, code, err := k.apiGet("/api/v1/nodes/" + kubeNodeName)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("node %s: HTTP %d", kubeNodeName, code)
	}
	var n struct {
		Status struct {
			Conditions []struct{ Type, Status, Message string }
		}
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			if c.Status == "True" {
				return nil
			}
			return fmt.Errorf("node %s not Ready: %s", kubeNodeName, c.Message)
		}
	}
	return fmt.Errorf("node %s: no Ready condition yet", kubeNodeName)
}

// containerdConfig edits `containerd config default` into the private
// instance's config; each edit must apply (a changed default fails loudly).
func containerdConfig(def, dir, cniDir string) (string, error) {
	edits := []struct{ re, repl string }{
		{`(?m)^root = ".*"$`, fmt.Sprintf("root = %q", filepath.Join(dir, "root"))},
		{`(?m)^state = ".*"$`, fmt.Sprintf("state = %q", filepath.Join(dir, "state"))},
		{`(?m)^(\s*)address = "/run/containerd/containerd.sock"$`, fmt.Sprintf("${1}address = %q", filepath.Join(dir, "containerd.sock"))},
		// root lacks CAP_SYS_RESOURCE on this machine kind: without the clamp
		// every sandbox fails ("can't get final child's PID from pipe").
		{`(?m)^(\s*)restrict_oom_score_adj = false$`, "${1}restrict_oom_score_adj = true"},
		{`(?m)^(\s*)sandbox_image = ".*"$`, fmt.Sprintf("${1}sandbox_image = %q", kubeSandboxImg)},
		{`(?m)^(\s*)bin_dir = "/opt/cni/bin"$`, `${1}bin_dir = "/usr/lib/cni"`},
		{`(?m)^(\s*)conf_dir = "/etc/cni/net.d"$`, fmt.Sprintf("${1}conf_dir = %q", cniDir)},
		{`(?m)^(\s*)Root = ""$`, fmt.Sprintf("${1}Root = %q", filepath.Join(dir, "runc-root"))},
		{`(?m)^(\s*)path = "/opt/containerd"$`, fmt.Sprintf("${1}path = %q", filepath.Join(dir, "opt"))},
	}
	for _, e := range edits {
		re := regexp.MustCompile(e.re)
		if !re.MatchString(def) {
			return "", fmt.Errorf("containerd default config: no line matches %s (containerd version changed?)", e.re)
		}
		def = re.ReplaceAllString(def, e.repl)
	}
	if strings.Contains(def, "SystemdCgroup = true") {
		return "", errors.New("containerd default config uses SystemdCgroup = true; the harness runs the kubelet with cgroupfs")
	}
	return def, nil
}

func (k *Kubernetes) ctr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := k.run("ctr", append([]string{"--address", k.ctrSock, "-n", "k8s.io"}, args...)...)
	if err != nil {
		t.Fatalf("kubernetes: %v", err)
	}
	return out
}

// ImportImages copies images from the local Docker engine into the node's
// containerd (docker save | ctr import). Pods must use imagePullPolicy:
// Never (or IfNotPresent with a non-latest tag): there is no registry.
func (k *Kubernetes) ImportImages(t testing.TB, images ...string) {
	t.Helper()
	if k.ctrSock == "" {
		t.Fatalf("kubernetes: ImportImages needs a node (StartKubernetes)")
	}
	for _, img := range images {
		save := exec.Command("docker", "save", img)
		imp := exec.Command("ctr", "--address", k.ctrSock, "-n", "k8s.io", "images", "import", "-")
		pipe, err := save.StdoutPipe()
		if err != nil {
			t.Fatalf("kubernetes: import %s: %v", img, err)
		}
		imp.Stdin = pipe
		var serr, ierr bytes.Buffer
		save.Stderr, imp.Stdout, imp.Stderr = &serr, &ierr, &ierr
		if err := save.Start(); err != nil {
			t.Fatalf("kubernetes: docker save %s: %v", img, err)
		}
		if err := imp.Run(); err != nil {
			save.Process.Kill()
			save.Wait()
			t.Fatalf("kubernetes: ctr import %s: %v: %s", img, err, ierr.String())
		}
		if err := save.Wait(); err != nil {
			t.Fatalf("kubernetes: docker save %s: %v: %s (build it: make images)", img, err, serr.String())
		}
	}
}

// ensureImages builds our images with integration/images.sh when Docker
// does not have them yet.
func ensureImages(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if exec.Command("docker", "image", "inspect", "sidecarkit/"+n+":latest").Run() != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	_, src, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(src), "..", "images.sh")
	out, err := exec.Command(script, append([]string{"--missing"}, missing...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubernetes: images.sh %v: %v\n%s", missing, err, out)
	}
}

// ---- teardown ----

var cniNetnsRe = regexp.MustCompile(`/var/run/netns/cni-[0-9a-f-]+`)

// killPods kills everything the node runs: the pods' processes (by their
// cgroups under our cgroupRoot), the containerd shims of our socket, and
// removes the pods' network namespaces.
func (k *Kubernetes) killPods(ctr string) {
	netnses := map[string]bool{}
	if out, err := k.run(ctr, "--address", k.ctrSock, "-n", "k8s.io", "containers", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			info, _ := k.run(ctr, "--address", k.ctrSock, "-n", "k8s.io", "containers", "info", id)
			for _, m := range cniNetnsRe.FindAllString(info, -1) {
				netnses[m] = true
			}
		}
	}
	// Kill and delete every task through containerd, so each shim exits
	// cleanly (removing its socket); then SIGKILL whatever is left.
	for _, pid := range k.cgroupPids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if out, err := k.run(ctr, "--address", k.ctrSock, "-n", "k8s.io", "tasks", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			k.run(ctr, "--address", k.ctrSock, "-n", "k8s.io", "tasks", "delete", "--force", id)
		}
	}
	for i := 0; i < 3; i++ {
		for _, pid := range k.cgroupPids() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range shimPids(k.ctrSock) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for ns := range netnses {
		if _, err := k.run("ip", "netns", "del", filepath.Base(ns)); err != nil && !strings.Contains(err.Error(), "No such file") {
			k.t.Logf("kubernetes teardown: %v", err)
		}
	}
}

func cgroupHierarchies() []string {
	var out []string
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil { // cgroup v2
		out = append(out, "/sys/fs/cgroup")
	}
	return out
}

// cgroupDirs lists our cgroup directories, deepest first.
func (k *Kubernetes) cgroupDirs() []string {
	if k.cgroup == "" {
		return nil
	}
	var dirs []string
	for _, h := range cgroupHierarchies() {
		filepath.WalkDir(filepath.Join(h, k.cgroup), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

func (k *Kubernetes) cgroupPids() []int {
	seen := map[int]bool{}
	var pids []int
	for _, d := range k.cgroupDirs() {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// shimPids finds the containerd shims serving our containerd (their
// command line names our socket, unique to this cluster).
func shimPids(sock string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == sock {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// teardown removes what is left once every process is gone: mounts under
// our directory, our cgroups, our network namespace, the directory.
func (k *Kubernetes) teardown() {
	logf := func(format string, args ...any) { k.t.Logf("kubernetes teardown: "+format, args...) }
	if k.Dir == "" {
		return
	}
	// Mounts (pod volumes, rootfs overlays, shm, the kubelet's rshared
	// bind of its root dir), deepest first, detached.
	for i := 0; i < 3; i++ {
		mounts := mountsUnder(k.Dir)
		if len(mounts) == 0 {
			break
		}
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && i == 2 {
				logf("umount %s: %v", m, err)
			}
		}
	}
	// cgroups: rmdir deepest first; a dying process can hold one briefly.
	for i := 0; i < 50; i++ {
		left := 0
		for _, d := range k.cgroupDirs() {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				left++
				if i%10 == 9 {
					for _, pid := range k.cgroupPids() {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
		if left == 0 {
			break
		}
		if i == 49 {
			logf("%d cgroup directories under %s could not be removed", left, k.cgroup)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := k.run("ip", "netns", "del", k.NetNS); err != nil && !strings.Contains(err.Error(), "No such file") {
		logf("%v", err)
	}
	// What the kubelet and CNI keep outside our directory: the container
	// log symlinks pointing into it, and libcni's result cache (our network
	// is named after the netns).
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if dst, err := os.Readlink(l); err == nil && strings.HasPrefix(dst, k.Dir+"/") {
			os.Remove(l)
		}
	}
	cached, _ := filepath.Glob("/var/lib/cni/results/" + k.NetNS + "-*")
	for _, f := range cached {
		os.Remove(f)
	}
	if err := os.RemoveAll(k.Dir); err != nil {
		logf("remove %s: %v", k.Dir, err)
	}
}

// mountsUnder lists mount points under dir (from /proc/self/mountinfo),
// deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RSS reports the resident memory of each cluster process (from
// /proc/<pid>/status), e.g. "kube-apiserver=270MB etcd=50MB ... total=750MB".
func (k *Kubernetes) RSS() string {
	names := make([]string, 0, len(k.procs))
	for n := range k.procs {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	total := 0
	for _, n := range names {
		kb := rssKB(k.procs[n].Pid())
		total += kb
		parts = append(parts, fmt.Sprintf("%s=%dMB", n, kb/1024))
	}
	shims := 0
	for _, pid := range shimPids(k.ctrSock) {
		shims += rssKB(pid)
	}
	if shims > 0 {
		total += shims
		parts = append(parts, fmt.Sprintf("shims=%dMB", shims/1024))
	}
	return strings.Join(append(parts, fmt.Sprintf("total=%dMB", total/1024)), " ")
}

func rssKB(pid int) int {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	return 0
}
