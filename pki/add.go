package pki

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// AddOptions configures Add.
type AddOptions struct {
	Controllers []string      // new controller names
	Routers     []string      // new router names
	Hosts       []string      // extra SANs, per new router (RouterHosts)
	CertTTL     time.Duration // default DefaultCertTTL
	Now         time.Time     // issue time; required
	Rand        io.Reader     // serials; default crypto/rand.Reader
}

// Add issues certificates for new controllers and routers from the root in
// dir, as `certmesh pki add` does: how a region or a node joins an existing
// deployment without touching anyone else's keys. The trust domain is the
// root's. Names must be new: Add writes nothing if any of their files
// exists, and returns the paths written, in order.
func Add(dir string, opts AddOptions) ([]string, error) {
	if opts.Now.IsZero() {
		return nil, errors.New("pki: add: issue time (Now) is zero")
	}
	if len(opts.Controllers)+len(opts.Routers) == 0 {
		return nil, errors.New("pki: add: no controller or router to add")
	}
	if opts.CertTTL == 0 {
		opts.CertTTL = DefaultCertTTL
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	hosts, err := RouterHosts(opts.Routers, opts.Hosts)
	if err != nil {
		return nil, fmt.Errorf("pki: add: hosts: %w", err)
	}
	root, err := LoadKeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	td, ok := strings.CutPrefix(root.Cert.Subject.CommonName, "certmesh root CA ")
	if !ok || ValidateTrustDomain(td) != nil {
		return nil, fmt.Errorf("pki: add: %s is not a certmesh root (subject %q)", filepath.Join(dir, CACertFile), root.Cert.Subject.CommonName)
	}
	seen := map[string]bool{}
	for _, n := range append(append([]string(nil), opts.Controllers...), opts.Routers...) {
		if err := checkName(n); err != nil {
			return nil, fmt.Errorf("pki: add: %w", err)
		}
		if seen[n] {
			return nil, fmt.Errorf("pki: add: name %q given twice", n)
		}
		seen[n] = true
		for _, f := range []string{CertFile, KeyFile} {
			if err := mustNotExist(filepath.Join(dir, n, f)); err != nil {
				return nil, err
			}
		}
	}
	var written []string
	// write stores a key pair; a controller's cert.pem carries the root
	// after its intermediate, as Init writes it.
	write := func(name string, kp KeyPair, withRoot ...bool) error {
		key, err := EncodeKeyPEM(kp.Key)
		if err != nil {
			return err
		}
		certs := EncodeCertsPEM(kp.Cert)
		if len(withRoot) > 0 && withRoot[0] {
			certs = EncodeCertsPEM(kp.Cert, root.Cert)
		}
		if err := os.MkdirAll(filepath.Join(dir, name), DirMode); err != nil {
			return fmt.Errorf("pki: add: %w", err)
		}
		for _, f := range []struct {
			name string
			data []byte
			mode os.FileMode
		}{{KeyFile, key, KeyFileMode}, {CertFile, certs, CertFileMode}} {
			p := filepath.Join(dir, name, f.name)
			if err := writeFile(p, f.data, f.mode, false); err != nil {
				return err
			}
			written = append(written, p)
		}
		return nil
	}
	for _, n := range opts.Controllers {
		kp, err := NewController(root, td, n, opts.CertTTL, opts.Now, opts.Rand)
		if err != nil {
			return written, err
		}
		if err := write(n, kp, true); err != nil {
			return written, err
		}
	}
	for _, n := range opts.Routers {
		kp, err := NewRouter(root, td, n, hosts[n], opts.CertTTL, opts.Now, opts.Rand)
		if err != nil {
			return written, err
		}
		if err := write(n, kp); err != nil {
			return written, err
		}
	}
	return written, nil
}
