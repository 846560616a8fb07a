package pki_test

import (
	"crypto/rand"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/pki"
)

// TestSPIFFEIdentitiesRoundTripThroughCertificates issues a real certificate
// for each awkward identity and reads the identity back from the parsed
// certificate.
func TestSPIFFEIdentitiesRoundTripThroughCertificates(t *testing.T) {
	p := newTestPKI(t)
	key, _ := pki.GenerateKey(rand.Reader)
	tests := []struct {
		identity, session string
		wantURI           string
	}{
		{"alice", "s1", "spiffe://mesh.test/identity/alice/session/s1"},
		{"alice smith", "s1", "spiffe://mesh.test/identity/alice%20smith/session/s1"},
		{"a/b/../c", "s/1", "spiffe://mesh.test/identity/a%2Fb%2F..%2Fc/session/s%2F1"},
		{"100%", "%2F", "spiffe://mesh.test/identity/100%25/session/%252F"},
		{"ünïcødé 😀", "s1", "spiffe://mesh.test/identity/%C3%BCn%C3%AFc%C3%B8d%C3%A9%20%F0%9F%98%80/session/s1"},
		{".", "..", "spiffe://mesh.test/identity/%2E/session/%2E%2E"},
		{"...", "s1", "spiffe://mesh.test/identity/%2E%2E%2E/session/s1"},
		{"a.b", "s1", "spiffe://mesh.test/identity/a.b/session/s1"},
		{"?q=1#frag", "s1", "spiffe://mesh.test/identity/%3Fq%3D1%23frag/session/s1"},
		{"user@host:22;x,y+z&w", "s1", "spiffe://mesh.test/identity/user%40host%3A22%3Bx%2Cy%2Bz%26w/session/s1"},
		{"tab\tnew\nline\x00nul", "s1", "spiffe://mesh.test/identity/tab%09new%0Aline%00nul/session/s1"},
		{"https://idp.example.com/users/42", "s1", "spiffe://mesh.test/identity/https%3A%2F%2Fidp.example.com%2Fusers%2F42/session/s1"},
		{"~_-.", "s1", "spiffe://mesh.test/identity/~_-./session/s1"},
	}
	for _, tt := range tests {
		t.Run(tt.wantURI, func(t *testing.T) {
			want := pki.IdentityID("mesh.test", tt.identity, tt.session)
			if got := want.String(); got != tt.wantURI {
				t.Errorf("String() = %q, want %q", got, tt.wantURI)
			}
			leaf, err := pki.IssueClient(p.ctrl["ctrl-a"], key.Public(), tt.identity, tt.session, time.Hour, t0, rand.Reader)
			if err != nil {
				t.Fatalf("IssueClient: %v", err)
			}
			if got := leaf.URIs[0].String(); got != tt.wantURI {
				t.Errorf("certificate URI = %q, want %q", got, tt.wantURI)
			}
			got, err := pki.IDOf(leaf)
			if err != nil {
				t.Fatalf("IDOf: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if leaf.Subject.CommonName != tt.identity {
				t.Errorf("CN = %q, want %q", leaf.Subject.CommonName, tt.identity)
			}
			// The escaped path never has more segments than the layout.
			u, _ := url.Parse(tt.wantURI)
			if n := strings.Count(u.EscapedPath(), "/"); n != 4 {
				t.Errorf("escaped path %q has %d slashes, want 4", u.EscapedPath(), n)
			}
		})
	}
}

func TestParseSPIFFE(t *testing.T) {
	ok := []struct {
		uri  string
		want pki.SPIFFEID
	}{
		{"spiffe://certmesh/controller/ctrl-us", pki.ControllerID("certmesh", "ctrl-us")},
		{"spiffe://certmesh/router/edge-1", pki.SPIFFEID{TrustDomain: "certmesh", Kind: pki.KindRouter, Name: "edge-1"}},
		{"spiffe://a.b-c_d/admin/admin", pki.SPIFFEID{TrustDomain: "a.b-c_d", Kind: pki.KindAdmin, Name: "admin"}},
		{"spiffe://certmesh/identity/a%2Fb/session/x", pki.IdentityID("certmesh", "a/b", "x")},
	}
	for _, tt := range ok {
		got, err := pki.ParseSPIFFE(tt.uri)
		if err != nil {
			t.Errorf("ParseSPIFFE(%q): %v", tt.uri, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseSPIFFE(%q) (-want +got):\n%s", tt.uri, diff)
		}
		if got.String() != tt.uri {
			t.Errorf("String() = %q, want %q", got.String(), tt.uri)
		}
	}

	bad := []string{
		"",
		"https://certmesh/controller/a",
		"spiffe://certmesh",
		"spiffe://certmesh/",
		"spiffe:///controller/a",
		"spiffe://CertMesh/controller/a",
		"spiffe://user@certmesh/controller/a",
		"spiffe://certmesh:443/controller/a",
		"spiffe://certmesh/controller/a?x=1",
		"spiffe://certmesh/controller/a#f",
		"spiffe://certmesh/controller/",
		"spiffe://certmesh/controller/a/b",
		"spiffe://certmesh/controller/UPPER",
		"spiffe://certmesh/controller/a%2Db", // '-' need not be encoded
		"spiffe://certmesh/widget/a",
		"spiffe://certmesh/identity/alice",
		"spiffe://certmesh/identity/alice/session",
		"spiffe://certmesh/identity/alice/session/",
		"spiffe://certmesh/identity/alice/sessions/x",
		"spiffe://certmesh/identity//session/x",
		"spiffe://certmesh/identity/a/b/session/x",
		"spiffe://certmesh/identity/a%2fb/session/x", // lower-case hex
		"spiffe://certmesh/identity/a%61/session/x",  // 'a' need not be encoded
		"spiffe://certmesh/identity/a b/session/x",
		"spiffe://certmesh/identity/%zz/session/x",
		"spiffe://certmesh/identity/%FF/session/x", // not UTF-8
		"spiffe://certmesh/identity/../session/x",
		"spiffe://certmesh/identity/x/session/x/",
		"spiffe://certmesh/identity/" + strings.Repeat("a", 3000) + "/session/x",
	}
	for _, uri := range bad {
		if got, err := pki.ParseSPIFFE(uri); err == nil {
			t.Errorf("ParseSPIFFE(%.80q) = %+v, want an error", uri, got)
		}
	}
}

func FuzzEscapeSegment(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/b", "100%", "ü", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seg := pki.EscapeSegment(s)
		if strings.ContainsAny(seg, "/?#") {
			t.Fatalf("EscapeSegment(%q) = %q holds a delimiter", s, seg)
		}
		got, err := url.PathUnescape(seg)
		if err != nil || got != s {
			t.Fatalf("PathUnescape(EscapeSegment(%q)) = %q, %v", s, got, err)
		}
	})
}
