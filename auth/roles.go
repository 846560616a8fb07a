package auth

import (
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// MaxClaimRoles caps the roles a token may claim: a session carries them
// in its replicated record.
const MaxClaimRoles = 64

// withRoles sets the claim that gives a session its roles.
func (c claimChecker) withRoles(claim string) claimChecker {
	c.rolesClaim = claim
	return c
}

// roles reads the roles claim: absent means none; a string is one role; a
// list must hold only strings. Which roles certmesh accepts as names is the
// controller's business; this only reads what the token says.
func (c claimChecker) roles(claims jwt.MapClaims) ([]string, *Error) {
	if c.rolesClaim == "" {
		return nil, nil
	}
	bad := func() ([]string, *Error) {
		return nil, newError(CodeTokenInvalid, nil, fmt.Sprintf("token claim %q is neither a string nor a list of at most %d strings", c.rolesClaim, MaxClaimRoles))
	}
	switch v := claims[c.rolesClaim].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		if len(v) > MaxClaimRoles {
			return bad()
		}
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return bad()
			}
			out = append(out, s)
		}
		return out, nil
	}
	return bad()
}
