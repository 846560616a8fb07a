// Command devtoken is a DEVELOPMENT-ONLY external JWT signer for the
// compose cluster in docker/: it makes an ECDSA P-256 key pair whose public
// half the controllers read as their auth.jwt keys_file (docs/deploy.md),
// and mints ES256 tokens for any subject with it. Anyone holding the
// private key logs in as anyone: never point a real deployment at it.
//
//	devtoken init DIR                          writes DIR/jwt.key (private, 0600) and DIR/jwt.pem (public, with its kid)
//	devtoken mint --key DIR/jwt.key SUBJECT    prints a token for SUBJECT
//
// Tokens carry iss "dev-signer", aud "certmesh", sub, iat, nbf and exp
// (--ttl, default 10m). The key id is the first 8 bytes of the SHA-256 of
// the public key's DER, in hex, so mint needs only the private key.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The claims the compose cluster's controllers expect (docker/config).
const (
	issuer   = "dev-signer"
	audience = "certmesh"
)

const usage = `devtoken: a DEVELOPMENT-ONLY JWT signer for the compose cluster
usage:
  devtoken init DIR                                  write DIR/jwt.key and DIR/jwt.pem
  devtoken mint --key DIR/jwt.key [--ttl 10m] SUBJECT  print a token for SUBJECT
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "init":
		err = initCmd(os.Args[2:])
	case "mint":
		err = mintCmd(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		err = usageError{fmt.Errorf("unknown command %q", os.Args[1])}
	}
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "devtoken: %v\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "devtoken: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func initCmd(args []string) error {
	if len(args) != 1 {
		return usageError{errors.New("init takes one argument, the directory")}
	}
	dir := args[0]
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	pub, kid, err := publicDER(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		block *pem.Block
		mode  os.FileMode
	}{
		{"jwt.key", &pem.Block{Type: "PRIVATE KEY", Bytes: priv}, 0o600},
		{"jwt.pem", &pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": kid}, Bytes: pub}, 0o644},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("%w (remove it to make a new key)", err)
		}
		if err := errors.Join(pem.Encode(fh, f.block), fh.Close()); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s (private) and %s (keys_file of the controllers), kid %s\n",
		filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pem"), kid)
	return nil
}

func mintCmd(args []string) error {
	fs := flag.NewFlagSet("mint", flag.ContinueOnError)
	keyFile := fs.String("key", "", "private key `FILE` written by devtoken init")
	ttl := fs.Duration("ttl", 10*time.Minute, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *keyFile == "" || fs.NArg() != 1 || fs.Arg(0) == "" {
		return usageError{errors.New("mint needs --key FILE and one SUBJECT")}
	}
	raw, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return fmt.Errorf("--key: %s: no PEM block", *keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("--key: %s: %w", *keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("--key: %s: not an ECDSA key", *keyFile)
	}
	_, kid, err := publicDER(key)
	if err != nil {
		return err
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": issuer, "aud": audience, "sub": fs.Arg(0),
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(*ttl).Unix(),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		return err
	}
	fmt.Println(s)
	return nil
}

// publicDER returns the public key's DER and its key id.
func publicDER(key *ecdsa.PrivateKey) ([]byte, string, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(der)
	return der, hex.EncodeToString(sum[:8]), nil
}
