package mesh

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestClosedSocketAtShutdownIsNotAnError: memberlist's gossip can fire
// between a node's leave and the close of its sockets, and logs the failed
// write at [ERR]; a clean stop must not put an ERROR in the node's log.
// Other errors keep their level.
func TestClosedSocketAtShutdownIsNotAnError(t *testing.T) {
	var out bytes.Buffer
	w := &slogWriter{
		log:   slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
		clock: time.Now,
	}
	lines := map[string]string{
		"[ERR] memberlist: Failed to send gossip to 127.0.0.1:27101: write udp 127.0.0.1:27121->127.0.0.1:27101: use of closed network connection": "level=DEBUG",
		"[ERR] memberlist: Failed to send gossip to 127.0.0.1:27101: write udp 127.0.0.1:27121->127.0.0.1:27101: sendto: no route to host":         "level=ERROR",
		"[WARN] memberlist: Refuting a dead message (from: n1)":                                                                                    "level=WARN",
	}
	for line, want := range lines {
		out.Reset()
		if _, err := w.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); !strings.Contains(got, want) {
			t.Errorf("%q logged as %q, want %s", line, got, want)
		}
	}
}
