package rules

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func base() Raw {
	return Raw{OutboundPort: 15001, InboundPort: 15006, DNSPort: 15053, TunnelPort: 15008, ProxyUID: "1337", ProxyGID: "1337",
		InterceptionMode: "REDIRECT", InboundPorts: []string{"*"}, ProxyPorts: []string{"15000", "15090"},
		OutboundCIDRs: []string{"*"}, IPv4: true, IPv6: true}
}

// goldenCases are the option combinations whose rendered rules are pinned.
func goldenCases() map[string]func(*Raw) {
	return map[string]func(*Raw){
		"default":       func(r *Raw) {},
		"ipv4-only":     func(r *Raw) { r.IPv6 = false },
		"ipv6-only":     func(r *Raw) { r.IPv4 = false },
		"inbound-ports": func(r *Raw) { r.InboundPorts = []string{"9090,8080", "8443"} },
		"no-inbound":    func(r *Raw) { r.InboundPorts = nil },
		"exclusions": func(r *Raw) {
			r.InboundExclude = []string{"8081", "22"}
			r.OutboundExcludePort = []string{"5432,6379"}
			r.OutboundExclude = []string{"10.96.0.0/12", "169.254.169.254", "fd00:10:96::/112"}
		},
		"include-cidrs": func(r *Raw) { r.OutboundCIDRs = []string{"10.0.0.0/8", "fd00::/8"}; r.OutboundPorts = []string{"443"} },
		"interfaces":    func(r *Raw) { r.ExcludeInterfaces = []string{"eth1", "wg0"} },
		"dns":           func(r *Raw) { r.DNS = true; r.DNSServers = []string{"127.0.0.53", "10.96.0.10", "fd00:10:96::a"} },
		// Issue 17, item by item.
		"dns-capture-all":    func(r *Raw) { r.DNS = true; r.CaptureAllDNS = true },
		"dns-no-nameservers": func(r *Raw) { r.DNS = true },
		"dns-localhost":      func(r *Raw) { r.DNS = true; r.DNSServers = []string{"127.0.0.1"} },
		"exclude-port-53":    func(r *Raw) { r.DNS = true; r.CaptureAllDNS = true; r.OutboundExcludePort = []string{"53"} },
		"loopback-include":   func(r *Raw) { r.OutboundCIDRs = []string{"127.1.2.3/32", "10.0.0.0/8"} },
		"overlaps": func(r *Raw) {
			r.InboundPorts = []string{"8080,15090,15008"}
			r.InboundExclude = []string{"8080"}
			r.OutboundPorts = []string{"443"}
			r.OutboundExcludePort = []string{"443"}
		},
		"multi-uid-gid": func(r *Raw) { r.ProxyUID = "1337,3"; r.ProxyGID = "1337,4" },
		"kube-virt":     func(r *Raw) { r.KubeVirtInterfaces = []string{"eth1", "eth2"} },
		"kube-virt-cidrs": func(r *Raw) {
			r.KubeVirtInterfaces = []string{"eth1"}
			r.OutboundCIDRs = []string{"10.0.0.0/8", "fd00::/8"}
		},
		"drop-invalid":         func(r *Raw) { r.DropInvalid = true },
		"owner-groups":         func(r *Raw) { r.OwnerGroups = "1000,202" },
		"owner-groups-exclude": func(r *Raw) { r.OwnerGroups, r.OwnerGroupsExclude = "*", "888,21" },
		"tproxy": func(r *Raw) {
			r.InterceptionMode, r.TProxyMark, r.TProxyRouteTable = "TPROXY", "1337", "133"
			r.InboundExclude = []string{"8081"}
			r.ExcludeInterfaces = []string{"eth9"}
			r.DropInvalid = true
		},
		"tproxy-ports": func(r *Raw) {
			r.InterceptionMode, r.TProxyMark, r.TProxyRouteTable = "TPROXY", "0x1000", "2000"
			r.InboundPorts = []string{"8080,9090"}
		},
		// `initnet istio-iptables -p 15001 -z 15006 -u 1337` (istio-init's argv):
		// Istio's defaults, nothing captured but the proxy's own pod-IP calls.
		"istio-init": func(r *Raw) {
			r.InboundPorts, r.OutboundCIDRs, r.ProxyPorts = nil, nil, nil
		},
		// The injector's usual istio-init argv.
		"istio-injected": func(r *Raw) {
			r.InboundPorts, r.OutboundCIDRs, r.ProxyPorts = []string{"*"}, []string{"*"}, nil
			r.InboundExclude = []string{"15090,15021,15020"}
		},
		"no-gid": func(r *Raw) { r.ProxyGID = "" },
		"custom-ports": func(r *Raw) {
			r.OutboundPort = 16001
			r.InboundPort = 16006
			r.ProxyUID = "2000"
			r.ProxyGID = "3000"
			r.ProxyPorts = []string{"16000"}
		},
		"port-range": func(r *Raw) { r.InboundExclude = []string{"9100-9103"} },
	}
}

func TestGolden(t *testing.T) {
	for name, mut := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			r := base()
			mut(&r)
			o, ps := r.Options(DefaultKeys())
			if len(ps) > 0 {
				t.Fatalf("options: %v", ps)
			}
			sets := Generate(o)
			files := map[string]string{name + ".nft": RenderNft(sets, true)}
			for _, rs := range sets {
				files[name+"."+rs.Family.String()+".iptables"] = RenderIptables(rs)
			}
			for file, got := range files {
				path := filepath.Join("testdata", "golden", file)
				if *update {
					os.MkdirAll(filepath.Dir(path), 0o755)
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./rules -update)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from the golden file:\n%s", file, got)
				}
			}
		})
	}
}

func TestLoopBreakersAlwaysPresent(t *testing.T) {
	for name, mut := range goldenCases() {
		r := base()
		mut(&r)
		o, _ := r.Options(DefaultKeys())
		for _, rs := range Generate(o) {
			txt := RenderIptables(rs)
			pass := "127.0.0.6/32"
			if rs.Family == IPv6 {
				pass = "::6/128"
			}
			for _, want := range []string{
				"-A SIDECARKIT_OUTBOUND -s " + pass + " -o lo -j RETURN",
				"-m owner --uid-owner " + strings.Split(r.ProxyUID, ",")[0] + " -j RETURN",
				"-A OUTPUT -j SIDECARKIT_OUTPUT",
			} {
				if !strings.Contains(txt, want) {
					t.Errorf("%s %s: missing %q", name, rs.Family, want)
				}
			}
			if o.InboundAll {
				for _, p := range []string{"15000", "15090"} {
					if name != "custom-ports" && name != "istio-injected" && !strings.Contains(txt, "--dport "+p+" -j RETURN") {
						t.Errorf("%s: proxy port %s not excluded", name, p)
					}
				}
			}
			// The proxy's own traffic must return before anything redirects to the outbound port.
			ownerReturn := strings.Index(txt, "--uid-owner "+strings.Split(r.ProxyUID, ",")[0]+" -j RETURN")
			redirect := strings.Index(txt, "-A SIDECARKIT_OUTBOUND -j SIDECARKIT_OUT_REDIRECT")
			if redirect >= 0 && redirect < ownerReturn {
				t.Errorf("%s: outbound redirect before the proxy-uid return", name)
			}
		}
	}
}

func TestValidationNamesEveryProblem(t *testing.T) {
	r := base()
	r.OutboundPort = 0
	r.InboundPort = 70000
	r.ProxyUID = "root"
	r.ProxyGID = "-1"
	r.InterceptionMode = "TPROXY"
	r.InboundPorts = []string{"80", "http", "0", "9-1"}
	r.OutboundExclude = []string{"10.0.0.1/8", "300.1.1.1", "*"}
	r.OutboundCIDRs = []string{"*", "10.0.0.0/8"}
	r.ExcludeInterfaces = []string{"eth0", "this-name-is-too-long"}
	r.OutboundPorts = []string{"443"}
	r.OutboundExcludePort = []string{"443"}
	_, ps := r.Options(DefaultKeys())
	var all []string
	for _, p := range ps {
		all = append(all, p.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{
		`envoy-port "0": not a port`,
		`inbound-capture-port "70000": not a port`,
		`proxy-uid "root": bad id "root" (not a numeric id`,
		`proxy-gid "-1": bad id "-1" (not a numeric id`,
		`istio-inbound-tproxy-mark "": want a non-zero 32-bit mark`,
		`istio-inbound-tproxy-route-table "": want a route table number`,
		`"http" (want a port`, `"0" (want a port`, `"9-1" (range end before start)`,
		`"10.0.0.1/8" (host bits set; did you mean 10.0.0.0/8?)`, `"300.1.1.1" (not an IP address or CIDR)`,
		`istio-service-exclude-cidr "10.0.0.1/8,300.1.1.1,*"`, `"*" (not allowed here)`,
		`istio-service-cidr "*,10.0.0.0/8": bad CIDR "*" must be alone`,
		`"this-name-is-too-long"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems do not mention %q:\n%s", want, got)
		}
	}
}

// Overlaps istio-iptables accepts are accepted, resolved with its
// precedence, and said in the notes.
func TestOverlapsTakeIstioPrecedence(t *testing.T) {
	r := base()
	r.InboundPorts = []string{"8080", "15090", "15008"}
	r.InboundExclude = []string{"8080"}
	r.OutboundPorts = []string{"443"}
	r.OutboundExcludePort = []string{"443"}
	o, ps, notes := r.OptionsNotes(DefaultKeys())
	if len(ps) > 0 {
		t.Fatalf("refused what istio-iptables accepts: %v", ps)
	}
	joined := strings.Join(notes, "\n")
	for _, want := range []string{"8080 is also in istio-local-exclude-ports: captured", "15090 is a proxy port", "15008 is the tunnel port", "443 is also in istio-local-outbound-ports-exclude: not captured"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
	txt := RenderIptables(Generate(o)[0])
	for _, want := range []string{
		"-A SIDECARKIT_INBOUND -p tcp -m tcp --dport 8080 -j SIDECARKIT_IN_REDIRECT",
		"-A SIDECARKIT_INBOUND -p tcp -m tcp --dport 15090 -j SIDECARKIT_IN_REDIRECT",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("missing %q:\n%s", want, txt)
		}
	}
	// The tunnel port returns before anything is redirected.
	if strings.Index(txt, "--dport 15008 -j RETURN") > strings.Index(txt, "--dport 15008 -j SIDECARKIT_IN_REDIRECT") {
		t.Errorf("15008 captured:\n%s", txt)
	}
	if strings.Index(txt, "--dport 443 -j RETURN") > strings.Index(txt, "--dport 443 -j SIDECARKIT_OUT_REDIRECT") {
		t.Errorf("-o 443 does not win over -q 443:\n%s", txt)
	}

	r = base()
	r.IPv4, r.IPv6 = false, false
	r.ProxyUID = "0"
	r.InboundPort = 15001
	_, ps = r.Options(DefaultKeys())
	if len(ps) != 3 {
		t.Errorf("want 3 problems (family, uid 0, same ports), got %v", ps)
	}
	r = base()
	r.ProxyUID, r.AllowRootUID = "0", true
	if _, ps = r.Options(DefaultKeys()); len(ps) != 0 {
		t.Errorf("istio-iptables mode refuses uid 0: %v", ps)
	}
}

func TestIDLists(t *testing.T) {
	r := base()
	r.ProxyUID, r.ProxyGID = "1337, 3,3", "4"
	o, ps := r.Options(DefaultKeys())
	if len(ps) > 0 || len(o.ProxyUIDs) != 2 || o.ProxyUIDs[1] != 3 || len(o.ProxyGIDs) != 1 {
		t.Fatalf("got %v %v %v", o.ProxyUIDs, o.ProxyGIDs, ps)
	}
	r.ProxyUID = "1337,x"
	_, ps = r.Options(DefaultKeys())
	if len(ps) != 1 || !strings.Contains(ps[0].Error(), `proxy-uid "1337,x": bad id "x" (not a numeric id`) || strings.Contains(ps[0].Error(), "must not be 0") {
		t.Errorf("got %v", ps)
	}
}

func TestDNSNeedsNameservers(t *testing.T) {
	r := base()
	r.DNS = true
	o, _, notes := r.OptionsNotes(DefaultKeys())
	if o.DNS || len(notes) != 1 || !strings.Contains(notes[0], "no nameservers") {
		t.Errorf("DNS=%v notes=%v", o.DNS, notes)
	}
	for _, rs := range Generate(o) {
		if txt := RenderIptables(rs); strings.Contains(txt, "53") || strings.Contains(txt, "*raw") {
			t.Errorf("DNS rules without nameservers:\n%s", txt)
		}
	}
}

func TestParsePorts(t *testing.T) {
	all, ps, err := ParsePorts([]string{" 80, 443", "80", "8000-8002"}, false)
	if err != nil || all || len(ps) != 5 || ps[0] != 80 || ps[4] != 8002 {
		t.Errorf("got %v %v %v", all, ps, err)
	}
	if all, ps, err := ParsePorts([]string{"*"}, true); !all || ps != nil || err != nil {
		t.Errorf("* got %v %v %v", all, ps, err)
	}
	if _, _, err := ParsePorts([]string{"1-2000"}, false); err == nil {
		t.Error("wide range accepted")
	}
	if _, ps, err := ParsePorts(nil, true); ps != nil || err != nil {
		t.Errorf("empty: %v %v", ps, err)
	}
}
