package pki

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// AllRouters is the router part of a --hosts entry *=HOST: a name that
// every router's certificate carries (a load balancer's name in front of
// them all), so that every router's key may answer for it.
const AllRouters = "*"

// RouterHosts assigns the --hosts entries of `pki init` and `pki add` to the
// routers they issue, so that each router certificate carries only its own
// names and one stolen router key cannot pose as every router. An entry is
//
//   - ROUTER=HOST: HOST on that router's certificate only;
//   - *=HOST: HOST on every router's certificate (a shared name, said so);
//   - HOST alone, the form of earlier releases, where it is unambiguous:
//     with a single router, on that router; a DNS name whose first label is
//     a router's name (edge-1.example.net, or edge-1 itself) on that
//     router; a loopback name or address on every router, like the
//     localhost, 127.0.0.1 and ::1 that each carries anyway. Any other
//     HOST alone, given with several routers, is an error that says how to
//     write it: putting it on every certificate, as earlier releases did,
//     is what let one router's key pose as all of them.
//
// It returns the extra hosts of each router, in the order given, without
// duplicates; every host is checked (an IP address or a DNS name).
func RouterHosts(routers, entries []string) (map[string][]string, error) {
	out := make(map[string][]string, len(routers))
	add := func(router, host string) {
		if !slices.Contains(out[router], host) {
			out[router] = append(out[router], host)
		}
	}
	isRouter := func(n string) bool { return slices.Contains(routers, n) }
	for _, e := range entries {
		router, host, named := strings.Cut(e, "=")
		if !named {
			host, router = e, ""
		}
		host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(host), "["), "]")
		router = strings.TrimSpace(router)
		if host == "" {
			return nil, fmt.Errorf("entry %q: no host", e)
		}
		if _, _, err := splitHosts([]string{host}); err != nil {
			return nil, fmt.Errorf("entry %q: %w", e, err)
		}
		switch {
		case named && router == AllRouters:
			for _, r := range routers {
				add(r, host)
			}
		case named:
			if !isRouter(router) {
				return nil, fmt.Errorf("entry %q: %q is not one of the routers given (%s)", e, router, strings.Join(routers, ","))
			}
			add(router, host)
		case len(routers) <= 1:
			for _, r := range routers {
				add(r, host)
			}
		case isLoopback(host):
			for _, r := range routers {
				add(r, host)
			}
		default:
			first, _, _ := strings.Cut(host, ".")
			if net.ParseIP(host) != nil || !isRouter(first) {
				return nil, fmt.Errorf("%q names none of the %d routers (%s); write %s=%s to put it on %s's certificate only, or %s=%s if every router may answer for it",
					host, len(routers), strings.Join(routers, ","), routers[0], host, routers[0], AllRouters, host)
			}
			add(first, host)
		}
	}
	return out, nil
}

// isLoopback reports whether host can only ever reach the local machine.
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return strings.EqualFold(host, "localhost")
}
