package sim

import (
	"fmt"
	"time"
)

// How a stream transfer that a partition blocks gets through once the
// partition heals. Streams are never lost to packet loss (each lost attempt
// costs a retransmission timeout, Env.Send), but a partition blocks every
// attempt, and when the first one after the heal happens depends on the
// transport above TCP. Three policies, each from a real transport:
//
//   - tcp: one connection that is never given up on: TCP retransmits with
//     an RTO of minRTO (200ms, Linux's minimum) doubling up to maxRTO
//     (60s), and breaks after streamGiveUp (15 min, about tcp_retries2).
//     memberlist's push-pull and certmesh's own streams are short-lived
//     and see this; the mesh and gossip strategies always use it. A stream
//     blocked at 15s next retries at 66s, 21s after a heal at 45s.
//   - hashicorp: hashicorp/raft's NetworkTransport (Consul, Nomad, Vault).
//     Every RPC sets a deadline of Timeout (NewTCPTransport's timeout,
//     10s in Consul and Nomad) on its pooled connection; until then TCP
//     retransmits as above. When it expires the RPC fails, the connection
//     is closed, and the follower's replication goroutine waits
//     backoff(failureWait = BackoffBase, failures, maxFailureScale) -
//     BackoffBase doubled per failure after the second, at most
//     BackoffMax (10ms * 2^10) - then dials a new connection: SYNs at 0,
//     1, 3, 7 s (Linux's initial SYN RTO of 1s, doubling) until the dial
//     timeout, which is Timeout too; a dial that gets through costs one
//     round trip before the RPC is sent (replication.go, net_transport.go).
//   - etcd: etcd's rafthttp. A peer's stream is closed when nothing was
//     read for Timeout (ConnReadTimeout, 5s; the leader's heartbeats keep a
//     healthy one busy), and redialed every RedialInterval (the stream
//     reader's rate limiter, 100ms); a dial that gets through costs one
//     round trip (stream.go).
//
// A raft leader sends to every follower at least every heartbeat (100ms),
// and OpenZiti's controllers keep their router channels alive with
// heartbeats too, so a connection that a partition cuts has a blocked
// transfer from (about) the moment of the cut: the schedule of attempts
// runs from the cut's start, and every transfer blocked on the same link
// in the same cut gets through at the same attempt, the first at or after
// both the heal and its own sending.

// Reconnect policies (ReconnectPolicy.Kind).
const (
	ReconnectTCP       = "tcp"
	ReconnectHashicorp = "hashicorp"
	ReconnectEtcd      = "etcd"
)

// ReconnectPolicy is how a strategy's streams get through a partition.
type ReconnectPolicy struct {
	Kind string // ReconnectTCP, ReconnectHashicorp or ReconnectEtcd
	// Timeout: hashicorp, the RPC deadline and the dial timeout (10s);
	// etcd, the read timeout that closes an idle stream (5s).
	Timeout time.Duration
	// BackoffBase and BackoffMax: hashicorp's wait between failed RPCs
	// (failureWait 10ms, doubling per failure after the second, at most
	// 10ms * 2^10 = 10.24s).
	BackoffBase, BackoffMax time.Duration
	// RedialInterval: etcd, the time between two dials (100ms).
	RedialInterval time.Duration
}

// defaultReconnect returns a policy of the given kind with the defaults
// of the transport it follows.
func defaultReconnect(kind string) ReconnectPolicy {
	switch kind {
	case ReconnectHashicorp:
		return ReconnectPolicy{Kind: kind, Timeout: 10 * time.Second, BackoffBase: 10 * time.Millisecond, BackoffMax: 10240 * time.Millisecond}
	case ReconnectEtcd:
		return ReconnectPolicy{Kind: kind, Timeout: 5 * time.Second, RedialInterval: 100 * time.Millisecond}
	}
	return ReconnectPolicy{Kind: ReconnectTCP}
}

// Validate checks the policy; errors name the parameter.
func (p ReconnectPolicy) Validate() error {
	switch p.Kind {
	case ReconnectTCP:
	case ReconnectHashicorp:
		switch {
		case p.Timeout <= 0:
			return fmt.Errorf("rpc_timeout %v must be positive", p.Timeout)
		case p.BackoffBase <= 0:
			return fmt.Errorf("backoff_base %v must be positive", p.BackoffBase)
		case p.BackoffMax < p.BackoffBase:
			return fmt.Errorf("backoff_max %v is below backoff_base %v", p.BackoffMax, p.BackoffBase)
		}
	case ReconnectEtcd:
		switch {
		case p.Timeout <= 0:
			return fmt.Errorf("rpc_timeout %v must be positive", p.Timeout)
		case p.RedialInterval <= 0:
			return fmt.Errorf("redial_interval %v must be positive", p.RedialInterval)
		}
	default:
		return fmt.Errorf("reconnect %q is none of tcp, hashicorp, etcd", p.Kind)
	}
	return nil
}

// reconnecter is implemented by strategies whose streams do not follow
// the tcp policy (the raft baseline).
type reconnecter interface {
	Reconnect() ReconnectPolicy
}

// SynRTO is Linux's initial retransmission timeout of a SYN, doubling per
// retry: a dial blocked by a partition or a lost handshake tries again
// after it.
const SynRTO = time.Second

// maxReconnectAttempts bounds the schedule's loop on any parameters; the
// heal is reached long before with any sensible ones.
const maxReconnectAttempts = 1 << 20

// through returns when a transfer sent at sent, on a link cut from
// cutStart until heal, leaves its sender for good, and whether that is on
// a new connection (whose handshake, one round trip, the caller adds);
// never if it is dropped.
func (p ReconnectPolicy) through(sent, cutStart, heal time.Duration) (at time.Duration, redialed bool) {
	if heal == never {
		return never, false
	}
	if p.Kind == ReconnectTCP || p.Kind == "" {
		return streamRetry(sent, heal), false
	}
	due := max(sent, heal)
	// The connection open at the cut: TCP retransmits until the deadline.
	t, rto := cutStart, minRTO
	for t < due && t+rto <= cutStart+p.Timeout {
		t += rto
		rto = min(2*rto, maxRTO)
	}
	if t >= due {
		return t, false
	}
	start := cutStart + p.Timeout // the RPC failed (hashicorp) or the stream was closed (etcd)
	for failures := 1; failures < maxReconnectAttempts; failures++ {
		if p.Kind == ReconnectEtcd {
			// Dials every RedialInterval: the first at or after due.
			k := (due - start + p.RedialInterval - 1) / p.RedialInterval
			return start + max(k, 0)*p.RedialInterval, true
		}
		start += p.backoff(failures)
		for syn, rto := start, SynRTO; syn < start+p.Timeout; syn, rto = syn+rto, 2*rto {
			if syn >= due {
				return syn, true
			}
		}
		start += p.Timeout // the dial timed out
	}
	return never, false
}

// backoff is hashicorp/raft's backoff(failureWait, failures, maxFailureScale):
// the base, doubled for each failure after the second, capped.
func (p ReconnectPolicy) backoff(failures int) time.Duration {
	b := p.BackoffBase
	for ; failures > 2 && b < p.BackoffMax; failures-- {
		b *= 2
	}
	return min(b, p.BackoffMax)
}

// cutSince returns when the partition that separates a and b at t began:
// the start of the run of segments, up to the one covering t, in which
// they are cut.
func (n *network) cutSince(a, b NodeID, t time.Duration) time.Duration {
	k := n.segAt(t)
	for k > 0 && n.regionsCut(&n.segs[k-1], n.region[a], n.region[b]) {
		k--
	}
	return n.bounds[k]
}
