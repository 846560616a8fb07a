package devcluster

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestWalk runs the dev cluster and its walk, as `certmesh dev --once`
// does, and checks the report a user reads.
func TestWalk(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	werr := c.Walk(ctx, &out)
	c.Close()
	t.Log("\n" + out.String())
	if werr != nil {
		t.Fatal(werr)
	}
	syncLine := regexp.MustCompile(`^sync (edge-[a-z-]+-[12]) (issue|policy|rotate|revoke) ([0-9]+(\.[0-9]+)?)$`)
	counts := map[string]int{}
	for _, line := range strings.Split(out.String(), "\n") {
		if m := syncLine.FindStringSubmatch(line); m != nil {
			counts[m[2]]++
		} else if strings.HasPrefix(line, "sync ") {
			t.Errorf("malformed sync line %q", line)
		}
	}
	if counts["policy"] != 12 {
		t.Errorf("%d sync lines for policy, want two per router (the grant, the removal)", counts["policy"])
	}
	for _, change := range []string{"issue", "rotate", "revoke"} {
		if counts[change] != 6 {
			t.Errorf("%d sync lines for %s, want one per router (6)", counts[change], change)
		}
	}
	for _, want := range []string{"connect to service echo by name", "connect to service secret via edge-", "connection to echo closed: yes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), "live connection closed: yes") {
		t.Error("the report does not say the live connection was closed")
	}
}
