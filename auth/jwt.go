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
	issuer string
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
		client, err := httpClientFor(cfg.CAFile, opts)
		if err != nil {
			return nil, err
		}
		keys = newRemoteKeys(cfg.JWKSURL, client, opts)
	}
	return &jwtProvider{
		name:   cfg.Name,
		issuer: cfg.Issuer,
		keys:   keys,
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
			return Identity{}, newError(CodeIssuerUnavailable, err, unreachable("keys of JWT signer", p.name, err)+" to verify the token")
		}
		var unknown *unknownKeyError
		if errors.As(err, &unknown) {
			return Identity{}, newError(CodeTokenInvalid, err, unknownKeyMessage("JWT signer "+p.name, unknown))
		}
		return Identity{}, newError(CodeTokenInvalid, err, "token signature or format is invalid")
	}
	return p.claims.check(claims)
}

// health reports the signer's state: a keys_file is always ready.
func (p *jwtProvider) health() Health {
	h := Health{Name: p.name, Issuer: p.issuer, Kind: "jwt", Discovered: true, State: StateReady}
	switch k := p.keys.(type) {
	case staticKeys:
		h.Keys = len(k)
	case *remoteKeys:
		kh := k.health()
		h.Keys, h.LastKeyRefresh, h.LastErrorAt = kh.keys, kh.lastSuccess, kh.lastErrAt
		switch {
		case kh.lastErr != nil && kh.keys == 0:
			h.State, h.LastError = StateUnreachable, kh.lastErr.Error()
		case kh.lastErr != nil:
			h.State, h.LastError = StateDegraded, kh.lastErr.Error()
		case kh.lastSuccess.IsZero():
			h.State = StateDiscovering // fetched on first use
		}
	}
	return h
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
