package mesh

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certmesh/certmesh/gossip"
)

// Readiness says whether this node can do its job correctly now, and if
// not, why (docs/deploy.md, "Health checks for load balancers"); nil means ready. Once ready, a
// mesh stays ready.
//
// A controller is ready once it has completed an anti-entropy exchange
// with a proven peer (gossip.Core.Synced), or has no seed but itself, or
// found no seed answering at all within JoinTimeout (a lone first node).
//
// A router is ready once it holds state it can admit from: it completed an
// exchange with a controller, or its store held records when it started
// (its snapshot), so that a restart during a control-plane outage admits
// at once. A router with neither would refuse every client in strict mode,
// and a lone router has no lone-node rule.
//
// For both, a node whose seeds answer but refuse the join (another gossip
// key or label: memberlist drops what it cannot decrypt or whose label
// differs) is not ready, snapshot or not: it can never exchange anything,
// so it would never learn a revocation.
//
// The exchange must be with a proven peer: a holder of the gossip key must
// not make a restarted node ready before it caught up. Only while no peer
// has proven itself, JoinTimeout after the start (a node of 1.1 among 1.0
// nodes during a rolling upgrade, or a mesh without identities), does an
// exchange with an unproven member count.
func (m *Mesh) Readiness() error {
	if m.ready.Load() {
		return nil
	}
	err := m.notReady()
	if err == nil && m.ready.CompareAndSwap(false, true) {
		m.log.Info("gossip: ready", "synced", m.synced.Load(), "restored", m.restored,
			"after", m.clock().Sub(m.started).String())
	}
	return err
}

// Ready reports whether Readiness is nil.
func (m *Mesh) Ready() bool { return m.Readiness() == nil }

func (m *Mesh) notReady() error {
	waited := m.clock().Sub(m.started) >= m.cfg.JoinTimeout
	if m.synced.Load() || m.syncedUnproven.Load() && !m.provenSeen.Load() && waited {
		return nil
	}
	if r := m.joinRefused.Load(); r != nil && !m.joined.Load() {
		return errors.New(*r)
	}
	if m.cfg.Core.Role == gossip.RoleRouter {
		if m.restored {
			return nil
		}
		return errors.New("no state to admit from yet: no snapshot in node.data_dir, and no exchange with a controller completed")
	}
	switch {
	case len(m.seeds) == 0:
		return nil
	case !m.sawPeer.Load() && waited:
		return nil // a lone first node: no seed answers at all
	case !m.sawPeer.Load():
		return fmt.Errorf("joining: no seed of %v answered yet (a lone node is ready after mesh.join_timeout, %v)",
			m.seeds, m.cfg.JoinTimeout)
	}
	return errors.New("catching up: no anti-entropy exchange with a peer completed yet")
}

// noteJoin keeps why a round of joins failed although some seed answered
// (see Readiness), and forgets it once a round reaches a peer or finds
// nobody answering at all.
func (m *Mesh) noteJoin(err error) {
	if err == nil {
		m.joinRefused.Store(nil)
		return
	}
	if why := refusedJoins(err); why != "" {
		msg := "the seeds answer but refuse this node's join (check that mesh.key_file holds a key of the mesh, and the mesh label): " + why
		m.joinRefused.Store(&msg)
		return
	}
	m.joinRefused.Store(nil)
}

// refusedJoins returns the failures of memberlist.Join's error that came
// after a seed accepted the connection, joined by "; ", or "" if every
// seed was unreachable. memberlist formats each seed's failure as a string
// ("failed to join ADDR: ERR"), so the dial failures are told apart by
// their text: net's "dial tcp ...", or "No route to ..." of memberlist's
// MockTransport. TestWrongKeyOrLabelIsNeverReady and
// TestMeshLoneNodeIsReadyAfterJoinTimeout pin the two cases to the
// memberlist version in go.mod.
func refusedJoins(err error) string {
	errs := []error{err}
	if w, ok := err.(interface{ WrappedErrors() []error }); ok {
		errs = w.WrappedErrors()
	}
	var refused []string
	for _, e := range errs {
		s := e.Error()
		if strings.Contains(s, "dial ") || strings.Contains(s, "No route to") || strings.Contains(s, "failed to resolve") {
			continue
		}
		refused = append(refused, s)
	}
	return strings.Join(refused, "; ")
}
