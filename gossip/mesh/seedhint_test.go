package mesh

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/internal/testutil"
)

// A seed that is a node's metrics listener, not its mesh port: the node
// says so at once, naming the node, instead of memberlist's "remote state
// is not encrypted" (which blames the keys) after the join timeout.
func TestJoinAtAMetricsListenerSaysSo(t *testing.T) {
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"node":"edge-1","role":"router","region":"us-east","members":[]}`))
	}))
	defer metrics.Close()
	seed := strings.TrimPrefix(metrics.URL, "http://")

	c := newMeshCluster(t, map[string]string{"c1": "us-east"}, nil)
	var logs lockedBuffer
	c.start("c1", func(cfg *Config) {
		cfg.Join = []string{seed}
		cfg.JoinTimeout = time.Minute // the hint must not wait for it
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	testutil.Eventually(t, 10*time.Second, "the wrong seed reported", func() bool {
		return strings.Contains(logs.String(), "the metrics listener of router edge-1")
	})
	line := logs.String()
	for _, want := range []string{"level=ERROR", "mesh.join", seed, "mesh.bind"} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %q:\n%s", want, line)
		}
	}
	if n := strings.Count(line, "not as a certmesh mesh port"); n != 1 {
		t.Errorf("reported %d times, want once:\n%s", n, line)
	}
}

func TestWrongSeedsOnlyForAnswersThatAreNotMeshPorts(t *testing.T) {
	if got := wrongSeeds(nil, nil); got != nil {
		t.Errorf("no error: %v", got)
	}
	err := errorString("3 errors occurred:\n\t* failed to join 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n" +
		"\t* failed to join 127.0.0.1:2: encryption is configured but remote state is not encrypted\n" +
		"\t* failed to join [::1]:3: encryption is configured but remote state is not encrypted\n")
	got := wrongSeeds(err, nil)
	if len(got) != 2 || !strings.Contains(got["127.0.0.1:2"], "another service") || got["[::1]:3"] == "" {
		t.Errorf("got %v", got)
	}
	if got := wrongSeeds(err, map[string]bool{"127.0.0.1:2": true, "[::1]:3": true}); len(got) != 0 {
		t.Errorf("seeds already reported: %v", got)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
