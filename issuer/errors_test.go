package issuer

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/certmesh/certmesh/auth"
)

func TestConfigErrorNamesTheSettingOnce(t *testing.T) {
	for _, tc := range []struct {
		err  *ConfigError
		want string
	}{
		// auth's errors name their setting: said once, not "issuer: auth: auth: auth.jwt[0]: ...".
		{&ConfigError{"auth", &auth.ConfigError{Field: "auth.jwt[0].issuer", Msg: "is required"}}, "issuer: auth.jwt[0].issuer: is required"},
		{&ConfigError{"auth", errors.New("auth: auth.jwt[0]: keys file: open k.pem: no such file or directory")}, "issuer: auth.jwt[0]: keys file: open k.pem: no such file or directory"},
		{&ConfigError{"pki.key", fs.ErrNotExist}, "issuer: pki.key: file does not exist"},
		{&ConfigError{"auth", errors.New("no token issuer")}, "issuer: auth: no token issuer"},
		// Nor "issuer: pki.key: pki: open ...".
		{&ConfigError{"pki.key", errors.New("pki: open k.pem: no such file or directory")}, "issuer: pki.key: open k.pem: no such file or directory"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
