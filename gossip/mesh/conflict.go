package mesh

import (
	"fmt"
	"net"

	"github.com/hashicorp/memberlist"
)

// conflictPings is how many pings, each waiting memberlist's ProbeTimeout,
// a name conflict gets before the other address counts as not answering:
// one lost datagram must not make a live duplicate look dead.
const conflictPings = 3

// NameConflict delivers, at most once, why this node stopped: while it was
// starting it found another live member of the mesh with its name. The
// mesh has then shut itself down without announcing a leave (a leave in
// this name would make peers drop the other node, which holds it), and its
// owner should stop too. See nameConflict.
func (m *Mesh) NameConflict() <-chan error { return m.conflict }

// nameConflict handles memberlist's report of an alive message for a name
// it holds at another address. Conflicts between other members are
// memberlist's to log. One about this node's own name is probed: a ping
// under this name to the other address, which only a live memberlist node
// of this name answers (memberlist ignores a ping for another name), so the
// ghost of this node's previous run at an address it no longer has (a
// restart on a new address, before the mesh declared the old one dead) is
// not taken for a duplicate.
//
// What a confirmed duplicate does depends on which of the two this node is.
// While it is starting (no join has reached a peer yet and it is not
// ready), it is the newcomer: it stops, and reports the conflict on
// NameConflict, so that two nodes configured with one name never both run.
// Once it is a member it keeps running and logs the other address: names in
// memberlist are self-asserted by anyone holding the gossip key, so a
// member that stepped down on such a claim could be stopped by any key
// holder.
func (m *Mesh) nameConflict(existing, other *memberlist.Node) {
	if existing.Name != m.cfg.Core.Name {
		return
	}
	starting := !m.joined.Load() && !m.Ready()
	addr := &net.UDPAddr{IP: append(net.IP(nil), other.Addr...), Port: int(other.Port)}
	m.probeMu.Lock()
	if m.closed.Load() || m.probing {
		m.probeMu.Unlock()
		return
	}
	m.probing = true
	m.probeWG.Add(1)
	m.probeMu.Unlock()
	go m.probeConflict(addr, starting)
}

// probeConflict pings addr under this node's name and acts on the answer
// (see nameConflict).
func (m *Mesh) probeConflict(addr *net.UDPAddr, starting bool) {
	defer m.probeWG.Done()
	defer m.probes.Add(1)
	defer func() {
		m.probeMu.Lock()
		m.probing = false
		m.probeMu.Unlock()
	}()
	name := m.cfg.Core.Name
	live := false
	for i := 0; i < conflictPings && !live && !m.closed.Load(); i++ {
		_, err := m.ml.Ping(name, addr)
		live = err == nil
	}
	if !live {
		m.log.Info("gossip: another address claims this node's name but does not answer to it; an earlier run of this node?",
			"other", addr.String())
		return
	}
	if !starting {
		m.logOnce("conflict:"+addr.String(), "gossip: another live node answers to this node's name; this node keeps running, "+
			"since it was a member first: stop the other one", "other", addr.String())
		return
	}
	err := fmt.Errorf("gossip: another live member of the mesh is named %s (it answers at %s); node names must be unique", name, addr)
	m.log.Error("gossip: leaving the mesh: node name taken", "other", addr.String(), "err", err)
	m.conflict <- err
	// Not here: shutdown waits for this goroutine.
	go m.shutdown(false)
}
