package router

import (
	"context"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// Mesh is what the router needs of the gossip mesh (mesh.Mesh in
// production, fakes in tests). Implementations must be safe for concurrent
// use.
type Mesh interface {
	// View calls fn with the store under the mesh's lock. fn must not
	// keep the store or block.
	View(fn func(*crdt.Store))
	// Subscribe calls fn, from the mesh's goroutine and after the store
	// holds them, with every batch of records merged. fn must not block.
	Subscribe(fn func(applied []crdt.Record)) (cancel func())
	// Want asks peers for an unknown certificate's records and returns
	// when they are merged, the issuer says it never issued it, everyone
	// asked had nothing, or ctx is done.
	Want(ctx context.Context, serial crdt.Serial, issuer string) (gossip.WantResult, error)
	// Ready reports readiness as docs/deploy.md defines it.
	Ready() bool
	// Close leaves the mesh.
	Close() error
}
