package pki

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The files of a PKI directory (its --help, `certmesh pki init`).
const (
	CACertFile    = "ca.pem"     // DIR/ca.pem: the root certificate
	CAKeyFile     = "ca.key"     // DIR/ca.key: the root key
	GossipKeyFile = "gossip.key" // DIR/gossip.key: memberlist key, base64, one line
	CertFile      = "cert.pem"   // DIR/<name>/cert.pem
	KeyFile       = "key.pem"    // DIR/<name>/key.pem
)

// InitOptions mirrors the flags of `certmesh pki init`.
type InitOptions struct {
	TrustDomain string   // --trust-domain; default DefaultTrustDomain
	Controllers []string // --controllers; at least one
	Routers     []string // --routers; may be empty
	Admin       string   // --admin; default DefaultAdmin
	Hosts       []string // --hosts: extra DNS names or IPs, per router (RouterHosts)
	Force       bool     // --force: overwrite existing files

	RootTTL time.Duration // root lifetime; default DefaultRootTTL
	CertTTL time.Duration // intermediate, router and admin lifetime; default DefaultCertTTL
	Now     time.Time     // issue time; required
	Rand    io.Reader     // serials and the gossip key; default crypto/rand.Reader
}

func (o *InitOptions) normalize() error {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.Admin == "" {
		o.Admin = DefaultAdmin
	}
	if o.RootTTL == 0 {
		o.RootTTL = DefaultRootTTL
	}
	if o.CertTTL == 0 {
		o.CertTTL = DefaultCertTTL
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now.IsZero() {
		return errors.New("pki: init: issue time (Now) is zero")
	}
	if err := checkTrustDomain(o.TrustDomain); err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	if len(o.Controllers) == 0 {
		return errors.New("pki: init: at least one controller is required")
	}
	seen := make(map[string]string)
	check := func(kind, name string) error {
		if err := checkName(name); err != nil {
			return fmt.Errorf("pki: init: %s %w", kind, err)
		}
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("pki: init: name %q is used twice (%s and %s); names must be unique across controllers, routers and admin", name, prev, kind)
		}
		seen[name] = kind
		return nil
	}
	for _, n := range o.Controllers {
		if err := check("controller", n); err != nil {
			return err
		}
	}
	for _, n := range o.Routers {
		if err := check("router", n); err != nil {
			return err
		}
	}
	if err := check("admin", o.Admin); err != nil {
		return err
	}
	if _, err := RouterHosts(o.Routers, o.Hosts); err != nil {
		return fmt.Errorf("pki: init: hosts: %w", err)
	}
	return nil
}

type fileToWrite struct {
	path string
	data []byte
	mode os.FileMode
}

// Init creates the PKI of a certmesh deployment under dir, as `certmesh pki
// init` does: the root CA (ca.pem, ca.key), an intermediate CA per
// controller, a leaf per router and the admin client certificate (each as
// <name>/cert.pem and <name>/key.pem), and the gossip key (gossip.key).
// Each router certificate carries only its own hosts (RouterHosts).
//
// A controller's cert.pem holds its intermediate followed by the root, so the
// file is a complete chain (the signer record's "chain to the root"); nodes
// still take the root they trust from ca.pem, never from cert.pem. Router and
// admin cert.pem hold the leaf only (they are issued by the root).
//
// Keys are written with mode 0600, certificates 0644. Unless opts.Force is
// set, Init writes nothing if any of the files exists and returns an
// *ExistsError naming it. It returns the paths written, in order.
func Init(dir string, opts InitOptions) ([]string, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	var files []fileToWrite
	add := func(path string, data []byte, mode os.FileMode) {
		files = append(files, fileToWrite{path: path, data: data, mode: mode})
	}
	addPair := func(name string, kp KeyPair, chain ...*x509.Certificate) error {
		key, err := EncodeKeyPEM(kp.Key)
		if err != nil {
			return err
		}
		add(filepath.Join(dir, name, CertFile), EncodeCertsPEM(append([]*x509.Certificate{kp.Cert}, chain...)...), CertFileMode)
		add(filepath.Join(dir, name, KeyFile), key, KeyFileMode)
		return nil
	}

	// Refuse before generating anything, so that a mistaken re-run is cheap
	// and writes nothing. writeFile re-checks atomically.
	if !opts.Force {
		paths := []string{CACertFile, CAKeyFile, GossipKeyFile}
		for _, n := range append(append(append([]string(nil), opts.Controllers...), opts.Routers...), opts.Admin) {
			paths = append(paths, filepath.Join(n, CertFile), filepath.Join(n, KeyFile))
		}
		for _, p := range paths {
			if err := mustNotExist(filepath.Join(dir, p)); err != nil {
				return nil, err
			}
		}
	}

	root, err := NewRoot(opts.TrustDomain, opts.RootTTL, opts.Now, opts.Rand)
	if err != nil {
		return nil, err
	}
	rootKey, err := EncodeKeyPEM(root.Key)
	if err != nil {
		return nil, err
	}
	add(filepath.Join(dir, CACertFile), EncodeCertsPEM(root.Cert), CertFileMode)
	add(filepath.Join(dir, CAKeyFile), rootKey, KeyFileMode)
	for _, n := range opts.Controllers {
		kp, err := NewController(root, opts.TrustDomain, n, opts.CertTTL, opts.Now, opts.Rand)
		if err != nil {
			return nil, err
		}
		if err := addPair(n, kp, root.Cert); err != nil {
			return nil, err
		}
	}
	hosts, err := RouterHosts(opts.Routers, opts.Hosts)
	if err != nil {
		return nil, fmt.Errorf("pki: init: hosts: %w", err)
	}
	for _, n := range opts.Routers {
		kp, err := NewRouter(root, opts.TrustDomain, n, hosts[n], opts.CertTTL, opts.Now, opts.Rand)
		if err != nil {
			return nil, err
		}
		if err := addPair(n, kp); err != nil {
			return nil, err
		}
	}
	admin, err := NewAdmin(root, opts.TrustDomain, opts.Admin, opts.CertTTL, opts.Now, opts.Rand)
	if err != nil {
		return nil, err
	}
	if err := addPair(opts.Admin, admin); err != nil {
		return nil, err
	}
	gossip, err := NewGossipKey(opts.Rand)
	if err != nil {
		return nil, err
	}
	add(filepath.Join(dir, GossipKeyFile), gossip, KeyFileMode)

	written := make([]string, 0, len(files))
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), DirMode); err != nil {
			return written, fmt.Errorf("pki: init: %w", err)
		}
		if err := writeFile(f.path, f.data, f.mode, opts.Force); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

func mustNotExist(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return &ExistsError{Path: path}
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("pki: %w", err)
	}
}

// RotateOptions configures RotateController.
type RotateOptions struct {
	CertTTL time.Duration // lifetime of the new intermediate; default DefaultCertTTL
	Now     time.Time     // issue time; required
	Rand    io.Reader     // serials; default crypto/rand.Reader
}

// RotateController issues controller name a new intermediate with a new key,
// signed by the root in dir, as `certmesh pki rotate-controller` does. The
// controller must already exist in dir (its cert.pem names it); its trust
// domain is kept. key.pem and then cert.pem are each replaced atomically
// (temporary file and rename); a reader between the two renames sees a key
// that does not match the certificate, which LoadKeyPair reports, so reload
// after this returns. It returns the new key pair.
func RotateController(dir, name string, opts RotateOptions) (KeyPair, error) {
	if err := checkName(name); err != nil {
		return KeyPair{}, fmt.Errorf("pki: rotate controller: %w", err)
	}
	if opts.Now.IsZero() {
		return KeyPair{}, errors.New("pki: rotate controller: issue time (Now) is zero")
	}
	if opts.CertTTL == 0 {
		opts.CertTTL = DefaultCertTTL
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	// Load errors name their file.
	root, err := LoadKeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return KeyPair{}, err
	}
	certPath := filepath.Join(dir, name, CertFile)
	old, err := LoadCerts(certPath)
	if err != nil {
		return KeyPair{}, err
	}
	id, err := idOf(old[0])
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: rotate controller: %s: %w", certPath, err)
	}
	if id.Kind != KindController || id.Name != name {
		return KeyPair{}, fmt.Errorf("pki: rotate controller: %s is the certificate of %s, not of controller %s", certPath, id, name)
	}
	if err := old[0].CheckSignatureFrom(root.Cert); err != nil {
		return KeyPair{}, fmt.Errorf("pki: rotate controller: %s was not issued by the root in %s: %w", certPath, filepath.Join(dir, CACertFile), err)
	}
	kp, err := NewController(root, id.TrustDomain, name, opts.CertTTL, opts.Now, opts.Rand)
	if err != nil {
		return KeyPair{}, err
	}
	key, err := EncodeKeyPEM(kp.Key)
	if err != nil {
		return KeyPair{}, err
	}
	if err := writeFile(filepath.Join(dir, name, KeyFile), key, KeyFileMode, true); err != nil {
		return KeyPair{}, err
	}
	if err := writeFile(certPath, EncodeCertsPEM(kp.Cert, root.Cert), CertFileMode, true); err != nil {
		return KeyPair{}, err
	}
	return kp, nil
}
