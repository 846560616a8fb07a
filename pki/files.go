package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes of what Init and RotateController write.
const (
	CertFileMode os.FileMode = 0o644
	KeyFileMode  os.FileMode = 0o600 // private keys and the gossip key
	DirMode      os.FileMode = 0o755
)

// maxPEMFileBytes caps what the Load functions read: a long chain is a few
// KiB.
const maxPEMFileBytes = 1 << 20

// EncodeCertsPEM returns certs as consecutive CERTIFICATE blocks.
func EncodeCertsPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		// pem.Encode into a bytes.Buffer cannot fail.
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// EncodeKeyPEM returns key as a PKCS #8 "PRIVATE KEY" block.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertsPEM parses every CERTIFICATE block in data, in order. It fails if
// there is none or if anything but whitespace lies outside the blocks.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return certs, nil
}

func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("data outside PEM blocks")
		}
		rest = bytes.TrimSpace(rest)
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE block")
	}
	return certs, nil
}

// ParseKeyPEM parses the first private key block in data: PKCS #8
// ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"). Blocks of other types before
// it, such as the "EC PARAMETERS" that openssl writes, are skipped.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	key, err := parseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return key, nil
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PRIVATE KEY or EC PRIVATE KEY block")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key of type %T cannot sign", key)
		}
		return s, nil
	}
}

// LoadCerts reads a PEM certificate chain from path (see ParseCertsPEM).
// Errors name the file.
func LoadCerts(path string) ([]*x509.Certificate, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	return certs, nil
}

// LoadKey reads a PEM private key from path (see ParseKeyPEM). Errors name
// the file.
func LoadKey(path string) (crypto.Signer, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	return key, nil
}

// LoadKeyPair reads the first certificate of certFile and the key in keyFile
// and checks that they belong together.
func LoadKeyPair(certFile, keyFile string) (KeyPair, error) {
	certs, err := LoadCerts(certFile)
	if err != nil {
		return KeyPair{}, err
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		return KeyPair{}, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return KeyPair{}, fmt.Errorf("pki: %s does not hold the key of the certificate in %s", keyFile, certFile)
	}
	return KeyPair{Cert: certs[0], Key: key}, nil
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pki: read %s: %w", path, err)
	}
	if len(data) > maxPEMFileBytes {
		return nil, fmt.Errorf("pki: %s is larger than %d bytes", path, maxPEMFileBytes)
	}
	return data, nil
}

// ExistsError is returned when a file that Init would write already exists
// and overwriting was not asked for.
type ExistsError struct {
	Path string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("pki: %s already exists; refusing to overwrite it without --force", e.Path)
}

// Is makes errors.Is(err, fs.ErrExist) true for an *ExistsError.
func (e *ExistsError) Is(target error) bool { return target == fs.ErrExist }

// writeFile writes data to path with mode through a temporary file in the
// same directory, so that readers see either the old or the new content. When
// overwrite is false it links the temporary file into place, which fails
// atomically with *ExistsError if path exists.
func writeFile(path string, data []byte, mode os.FileMode, overwrite bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		os.Remove(tmpName) // after a rename or link this removes nothing or the extra link
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		tmp = nil
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	tmp = nil
	if overwrite {
		err = os.Rename(tmpName, path)
	} else {
		err = os.Link(tmpName, path)
		if errors.Is(err, fs.ErrExist) {
			return &ExistsError{Path: path}
		}
	}
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pki: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pki: sync %s: %w", dir, err)
	}
	return nil
}
