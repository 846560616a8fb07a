// Package devoidc is a DEVELOPMENT-ONLY OpenID Connect issuer, used by
// `certmesh dev` and by tests. It serves OIDC discovery
// (/.well-known/openid-configuration) and a JWKS (/keys) under its issuer
// URL, and mints ES256 ID tokens for whatever subject its caller asks for.
//
// It is not an identity provider: it authenticates nobody, has no
// authorization or token endpoint, and anyone who can call Mint gets a valid
// token. Never configure a production controller to trust it, and serve it
// on loopback only.
//
// Keys: New creates one ECDSA P-256 key; Rotate adds a new key (new kid) and
// signs with it from then on, while the JWKS keeps publishing the old ones so
// that tokens already minted stay valid. The JWKS is served with
// Cache-Control: no-store, so a verifier sees a rotation at its next fetch.
package devoidc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config configures an Issuer.
type Config struct {
	// Issuer is the URL the issuer is served at and the iss of its tokens,
	// such as http://127.0.0.1:5556. Required (Start sets it).
	Issuer string
	// Audience is the aud of tokens minted by Mint; default "certmesh".
	Audience string
	// Now is the clock for iat and exp; default time.Now.
	Now func() time.Time
	// Rand is the source of key ids; default crypto/rand.Reader. Since Go
	// 1.26 key generation always uses a secure source.
	Rand io.Reader
}

// Issuer is a development OIDC issuer. It is an http.Handler; its methods
// are safe for concurrent use.
type Issuer struct {
	cfg        Config
	configPath string
	keysPath   string

	mu   sync.Mutex
	keys []signingKey // guarded by mu; all are published, the last one signs
}

type signingKey struct {
	kid string
	key *ecdsa.PrivateKey
}

// New returns an issuer with one signing key.
func New(cfg Config) (*Issuer, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("devoidc: issuer %q is not an http(s) URL without query or fragment", cfg.Issuer)
	}
	if cfg.Audience == "" {
		cfg.Audience = "certmesh"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	base := strings.TrimSuffix(u.Path, "/")
	i := &Issuer{
		cfg:        cfg,
		configPath: base + "/.well-known/openid-configuration",
		keysPath:   base + "/keys",
	}
	if _, err := i.Rotate(); err != nil {
		return nil, err
	}
	return i, nil
}

// URL returns the issuer URL (the iss of its tokens).
func (i *Issuer) URL() string { return i.cfg.Issuer }

// Rotate adds a new signing key and returns its kid. Tokens minted from now
// on carry it; the JWKS keeps the older keys.
func (i *Issuer) Rotate() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), i.cfg.Rand)
	if err != nil {
		return "", fmt.Errorf("devoidc: generate key: %w", err)
	}
	var id [8]byte
	if _, err := io.ReadFull(i.cfg.Rand, id[:]); err != nil {
		return "", fmt.Errorf("devoidc: key id: %w", err)
	}
	kid := hex.EncodeToString(id[:])
	i.mu.Lock()
	i.keys = append(i.keys, signingKey{kid: kid, key: key})
	i.mu.Unlock()
	return kid, nil
}

// Mint returns an ID token for subject that expires ttl from now, with iss,
// aud (Config.Audience), sub, iat and exp.
func (i *Issuer) Mint(subject string, ttl time.Duration) (string, error) {
	now := i.cfg.Now()
	return i.MintClaims(map[string]any{
		"iss": i.cfg.Issuer,
		"aud": i.cfg.Audience,
		"sub": subject,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	})
}

// MintClaims signs claims exactly as given with the current key, for tests
// that need tokens with odd claims (expired, another audience, no exp).
func (i *Issuer) MintClaims(claims map[string]any) (string, error) {
	i.mu.Lock()
	k := i.keys[len(i.keys)-1]
	i.mu.Unlock()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.key)
	if err != nil {
		return "", fmt.Errorf("devoidc: sign: %w", err)
	}
	return s, nil
}

// ServeHTTP serves discovery and the JWKS under the issuer URL's path.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var body any
	switch r.URL.Path {
	case i.configPath:
		body = map[string]any{
			"issuer":                                i.cfg.Issuer,
			"jwks_uri":                              strings.TrimSuffix(i.cfg.Issuer, "/") + "/keys",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		}
	case i.keysPath:
		body = i.jwks()
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// An error here means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(body)
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func (i *Issuer) jwks() map[string][]jwk {
	i.mu.Lock()
	defer i.mu.Unlock()
	keys := make([]jwk, 0, len(i.keys))
	for _, k := range i.keys {
		// A key made by ecdsa.GenerateKey on P-256 always encodes.
		pt, _ := k.key.PublicKey.Bytes() // 0x04 || X (32) || Y (32)
		keys = append(keys, jwk{
			Kty: "EC", Crv: "P-256",
			X:   base64.RawURLEncoding.EncodeToString(pt[1:33]),
			Y:   base64.RawURLEncoding.EncodeToString(pt[33:65]),
			Kid: k.kid, Alg: "ES256", Use: "sig",
		})
	}
	return map[string][]jwk{"keys": keys}
}

// Server is an Issuer served over plain HTTP.
type Server struct {
	*Issuer
	srv  *http.Server
	done chan error
}

// Start listens on addr (use "127.0.0.1:0" for a free loopback port), sets
// cfg.Issuer to http://<listening address> and serves the issuer until Close.
func Start(addr string, cfg Config) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devoidc: %w", err)
	}
	cfg.Issuer = "http://" + l.Addr().String()
	iss, err := New(cfg)
	if err != nil {
		l.Close()
		return nil, err
	}
	s := &Server{
		Issuer: iss,
		srv:    &http.Server{Handler: iss, ReadHeaderTimeout: 5 * time.Second},
		done:   make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(l) }()
	return s, nil
}

// Close stops the server and waits for it to return.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
