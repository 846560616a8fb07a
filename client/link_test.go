package client

import (
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/internal/testutil"
)

// The reasons of Connect's Disconnected events, from what the routers do
// next (the routers that close connections on a removal of access and
// refuse with access_denied are another package's; here the outcomes are
// fed in as Connect meets them).
func TestDisconnectedReasons(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func(l *linkState)
		want  string
	}{
		{"a close, then admitted again: the router was lost", func(l *linkState) {
			l.up("r1")
			l.lose("r1", nil)
			l.up("r2")
		}, "connected disconnected(router_lost) connected"},
		{"a close, then access_denied: access was removed", func(l *linkState) {
			l.up("r1")
			l.lose("r1", nil)
			l.down("r1", ReasonAccessDenied, nil)
			l.down("r1", ReasonAccessDenied, nil)
		}, "connected disconnected(access_removed)"},
		{"a close, then no router: the router was lost", func(l *linkState) {
			l.up("r1")
			l.lose("r1", nil)
			l.down("r2", ReasonRouterLost, nil)
			l.down("r1", ReasonRouterLost, nil)
		}, "connected disconnected(router_lost)"},
		{"refused access from the start", func(l *linkState) {
			l.down("r1", ReasonAccessDenied, nil)
			l.down("r1", ReasonAccessDenied, nil)
		}, "disconnected(access_denied)"},
		{"a close, then a certificate refusal the controllers do not confirm", func(l *linkState) {
			l.up("r1")
			l.lose("r1", nil)
			l.down("r1", ReasonRefused, nil)
		}, "connected disconnected(router_lost) disconnected(refused)"},
		{"the application's own close, then nothing", func(l *linkState) {
			l.up("r1")
			l.down("r1", ReasonClosed, nil)
			l.down("r1", ReasonClosed, nil)
		}, "connected disconnected(closed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := eventsOnly(t)
			var mu sync.Mutex
			var got []string
			c.events.subscribe(func(e Event) {
				mu.Lock()
				got = append(got, e.String())
				mu.Unlock()
			})
			tc.steps(&linkState{c: c})
			testutil.Eventually(t, 5*time.Second, tc.want, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return strings.Join(got, " ") == tc.want
			})
		})
	}
}

// A refusal of access says nothing of the session: the controllers are
// not asked (there are none here to ask).
func TestARefusalOfAccessIsNotPutToTheControllers(t *testing.T) {
	c := eventsOnly(t)
	for _, a := range []int{49, 112} {
		if r := c.judgeRefusal(context.Background(), &RefusedError{Alert: tls.AlertError(a)}); r != ReasonAccessDenied {
			t.Errorf("alert %d: %v", a, r)
		}
	}
}

// eventsOnly is a Client with nothing but its events: no session, no
// controller, no router.
func eventsOnly(t *testing.T) *Client {
	t.Helper()
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := &Client{cfg: cfg, events: newDispatcher(cfg.Logger), sess: &Session{}}
	t.Cleanup(c.events.close)
	return c
}
