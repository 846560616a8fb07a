package mesh

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/certmesh/certmesh/api"
)

// notMeshAnswer is how memberlist reports a seed whose answer to a join is
// not a memberlist stream encrypted with the keyring: a port of something
// else, most often a node's metrics listener given as mesh.join instead of
// its mesh.bind. Its own words blame the keys, which sends an operator to
// the wrong file.
const notMeshAnswer = "remote state is not encrypted"

var failedJoinRE = regexp.MustCompile(`failed to join (\S+): ([^\n]*)`)

// seedProbeTimeout bounds the request that asks a wrong seed what it is.
const seedProbeTimeout = time.Second

// wrongSeeds returns, for each seed in a failed join's error that answered
// but not as a mesh port, a sentence saying so; when the seed answers
// /v1/status over plain HTTP, the sentence names the node whose metrics
// listener it is. Seeds in known are skipped (not asked again).
func wrongSeeds(err error, known map[string]bool) map[string]string {
	if err == nil || !strings.Contains(err.Error(), notMeshAnswer) {
		return nil
	}
	out := map[string]string{}
	for _, m := range failedJoinRE.FindAllStringSubmatch(err.Error(), -1) {
		seed, why := m[1], m[2]
		if known[seed] || !strings.Contains(why, notMeshAnswer) {
			continue
		}
		what := "another service"
		if st := probeStatus(seed); st != nil {
			what = fmt.Sprintf("the metrics listener of %s %s (metrics.listen)", st.Role, st.Node)
		}
		out[seed] = fmt.Sprintf("mesh.join: seed %s answers, but not as a certmesh mesh port: it is %s; "+
			"give each seed's mesh.bind address (default port 7946)", seed, what)
	}
	return out
}

// probeStatus is what the metrics listener at addr says it is, or nil.
func probeStatus(addr string) *api.Status {
	ctx, cancel := context.WithTimeout(context.Background(), seedProbeTimeout)
	defer cancel()
	return api.ProbeStatus(ctx, addr)
}
