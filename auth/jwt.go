package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// jwtProvider verifies the tokens of one external JWT signer.
type jwtProvider struct {
	name   string
	keys   keySource
	parser *jwt.Parser
	claims claimChecker
}

func newJWTProvider(cfg JWTConfig, namespace string, opts Options) (*jwtProvider, error) {
	var (
		keys    keySource
		methods []string
	)
	if cfg.KeysFile != "" {
		data, err := readCapped(cfg.KeysFile, maxKeysFileBytes)
		if err != nil {
			return nil, err
		}
		static, err := parsePEMKeys(data)
		if err != nil {
			return nil, fmt.Errorf("keys_file %s: %w", cfg.KeysFile, err)
		}
		for _, k := range static {
			methods = append(methods, k.algs...)
		}
		slices.Sort(methods)
		methods = slices.Compact(methods)
		keys = staticKeys(static)
	} else {
		methods = asymmetricAlgs()
		keys = &remoteKeys{
			url:         cfg.JWKSURL,
			client:      opts.HTTPClient,
			now:         opts.Now,
			minInterval: opts.JWKSRefreshInterval,
		}
	}
	return &jwtProvider{
		name: cfg.Name,
		keys: keys,
		// The parser refuses any alg outside what the keys can verify before
		// a key is looked up; candidates then pins each key to the
		// algorithms of its own type.
		parser: newTokenParser(methods),
		claims: newClaimChecker(cfg.Issuer, cfg.Audience, cfg.IdentityClaim, "jwt:"+cfg.Name, namespace, opts).withRoles(cfg.RolesClaim),
	}, nil
}

func (p *jwtProvider) verify(ctx context.Context, raw string) (Identity, *Error) {
	claims := jwt.MapClaims{}
	if err := verifySignature(ctx, p.parser, p.keys, raw, claims); err != nil {
		var unavailable *unavailableError
		if errors.As(err, &unavailable) {
			return Identity{}, newError(CodeIssuerUnavailable, err, fmt.Sprintf("keys of JWT signer %s cannot be fetched to verify the token", p.name))
		}
		return Identity{}, newError(CodeTokenInvalid, err, "token signature or format is invalid")
	}
	return p.claims.check(claims)
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
