package mesh

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/memberlist"
)

// maxKeyFileSize caps a gossip key file; a real one holds a few lines.
const maxKeyFileSize = 64 << 10

// LoadKeyFile reads a gossip key file: one base64 key a line (16, 24 or 32
// bytes once decoded, for AES-128, -192 or -256), blank lines and lines
// starting with # ignored. The first key encrypts; all of them decrypt,
// which lets keys be rotated without a partition: add the new key second
// everywhere, then move it first, then remove the old one.
func LoadKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("gossip: key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("gossip: key file %s: larger than %d bytes", path, maxKeyFileSize)
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("gossip: key file %s: %w", path, err)
	}
	return keys, nil
}

// ParseKeys parses the contents of a key file (see LoadKeyFile). Errors
// name the line.
func ParseKeys(data []byte) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64: %v", i+1, err)
		}
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("line %d: key of %d bytes, want 16, 24 or 32", i+1, len(k))
		}
		for _, prev := range keys {
			if bytes.Equal(prev, k) {
				return nil, fmt.Errorf("line %d: duplicate key", i+1)
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key (one base64 key a line)")
	}
	return keys, nil
}

// SetKeys replaces the gossip keyring, as on a SIGHUP reload of the key
// file: every key is installed, the first one encrypts from now on, and
// keys not listed are removed. A mesh started without keys runs
// unencrypted and cannot start encrypting without a restart.
func (m *Mesh) SetKeys(keys [][]byte) error {
	kr := m.keyring
	if kr == nil {
		return errors.New("gossip: set keys: the mesh was started without encryption; restart it with a key file")
	}
	if len(keys) == 0 {
		return errors.New("gossip: set keys: no key")
	}
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("gossip: set keys: key %d: %v", i+1, err)
		}
	}
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("gossip: set keys: %w", err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("gossip: set keys: %w", err)
	}
	for _, old := range kr.GetKeys() {
		keep := false
		for _, k := range keys {
			keep = keep || bytes.Equal(k, old)
		}
		if !keep {
			if err := kr.RemoveKey(old); err != nil {
				return fmt.Errorf("gossip: set keys: %w", err)
			}
		}
	}
	m.log.Info("gossip: keyring reloaded", "keys", len(keys))
	return nil
}
