package auth

import (
	"testing"
)

// FuzzParseJWKS feeds untrusted key sets to the parser: it must never panic,
// and every key it returns must have at least one asymmetric algorithm.
func FuzzParseJWKS(f *testing.F) {
	seeds := []string{
		`{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		`{"keys":[]}`,
		`{}`,
		`garbage`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			if len(k.algs) == 0 {
				t.Fatalf("key %q has no algorithm", k.kid)
			}
			for _, a := range k.algs {
				if a == "none" || a[0] == 'H' {
					t.Fatalf("key %q allows %s", k.kid, a)
				}
			}
		}
	})
}
