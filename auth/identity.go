package auth

import (
	"fmt"
	"net/url"
)

// Identity namespaces keep the identities of different auth entries apart:
// `sub=alice` from JWT signer corp and from an OIDC issuer are two people
// unless the operator says otherwise. With more than one entry configured,
// the certmesh identity of a token is
//
//	<namespace>:<claim value>
//
// where the namespace is the entry's identity_namespace, by default its
// name (auth.jwt[].name; auth.oidc[].name, by default the issuer URL's host
// name). Entries that set the same identity_namespace share identities:
// that is how an operator maps two sources together on purpose. A
// controller with a single entry keeps the claim value as the identity,
// unchanged, unless that entry sets identity_namespace.
//
// A namespace never holds a colon, so the identity names its namespace and
// claim value unambiguously: no claim value from one entry can spell an
// identity of another.

// MaxNamespaceLen caps an identity namespace.
const MaxNamespaceLen = 63

// checkNamespace accepts 1 to MaxNamespaceLen letters, digits, '.', '-'
// and '_', starting with a letter or a digit.
func checkNamespace(ns string) error {
	if ns == "" || len(ns) > MaxNamespaceLen {
		return fmt.Errorf("%q is not a namespace: want 1 to %d characters", ns, MaxNamespaceLen)
	}
	for i, c := range ns {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '-' || c == '_'):
		default:
			return fmt.Errorf("%q is not a namespace: letters, digits, '.', '-' and '_' only, starting with a letter or digit", ns)
		}
	}
	return nil
}

// name is the entry's name: Name, or the issuer URL's host name.
func (o OIDCConfig) name() string {
	if o.Name != "" {
		return o.Name
	}
	if u, err := url.Parse(o.Issuer); err == nil {
		return u.Hostname()
	}
	return ""
}

// namespaces resolves the identity namespace of every entry (empty: the
// claim value is the identity), and checks that no two entries share one
// unless each of them set it on purpose. Errors are *ConfigError.
func (c Config) namespaces() (oidc, jwt []string, err error) {
	n := len(c.OIDC) + len(c.JWT)
	type entry struct {
		field    string // auth.oidc[0]
		explicit bool
	}
	seen := make(map[string]entry)
	resolve := func(field, explicit, name, nameField string) (string, error) {
		ns := explicit
		switch {
		case ns != "":
			if err := checkNamespace(ns); err != nil {
				return "", &ConfigError{Field: field + ".identity_namespace", Msg: err.Error()}
			}
		case n > 1:
			ns = name
			if err := checkNamespace(ns); err != nil {
				return "", &ConfigError{Field: field + nameField, Msg: fmt.Sprintf(
					"%v; with more than one auth entry the name is the namespace of the entry's identities: set name or identity_namespace", err)}
			}
		default:
			return "", nil // a single entry: identities as before
		}
		if prev, dup := seen[ns]; dup && !(prev.explicit && explicit != "") {
			return "", &ConfigError{Field: field, Msg: fmt.Sprintf(
				"its identities would be those of %s (namespace %q): give each entry its own name, "+
					"or set the same identity_namespace on each to map their identities together on purpose", prev.field, ns)}
		}
		seen[ns] = entry{field, explicit != ""}
		return ns, nil
	}
	for i, o := range c.OIDC {
		f := fmt.Sprintf("auth.oidc[%d]", i)
		nameField := ".name"
		if o.Name == "" {
			nameField = ".issuer" // the default name is the issuer's host
		}
		ns, err := resolve(f, o.IdentityNamespace, o.name(), nameField)
		if err != nil {
			return nil, nil, err
		}
		oidc = append(oidc, ns)
	}
	for i, j := range c.JWT {
		ns, err := resolve(fmt.Sprintf("auth.jwt[%d]", i), j.IdentityNamespace, j.Name, ".name")
		if err != nil {
			return nil, nil, err
		}
		jwt = append(jwt, ns)
	}
	return oidc, jwt, nil
}

// IdentityFormat describes, for operators, what the identities of each
// entry look like: "auth.jwt[0] (corp): corp:<sub>". It assumes a valid
// config.
func (c Config) IdentityFormat() []string {
	oidc, jwt, err := c.namespaces()
	if err != nil {
		return nil
	}
	var out []string
	line := func(field, name, ns, claim string) {
		if claim == "" {
			claim = DefaultIdentityClaim
		}
		id := "<" + claim + ">"
		if ns != "" {
			id = ns + ":" + id
		}
		out = append(out, fmt.Sprintf("%s (%s): %s", field, name, id))
	}
	for i, o := range c.OIDC {
		line(fmt.Sprintf("auth.oidc[%d]", i), o.Issuer, oidc[i], o.IdentityClaim)
	}
	for i, j := range c.JWT {
		line(fmt.Sprintf("auth.jwt[%d]", i), j.Name, jwt[i], j.IdentityClaim)
	}
	return out
}
