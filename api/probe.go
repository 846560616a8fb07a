package api

import (
	"context"
	"encoding/json"
	"net/http"
)

// ProbeStatus asks hostport for PathStatus over plain HTTP, as a node's
// metrics listener serves it, and returns what it says it is; nil when it
// is not a metrics listener. The command line and the mesh use it to tell
// an operator that an address given as a controller's API or as a mesh
// seed is a metrics listener instead.
func ProbeStatus(ctx context.Context, hostport string) *Status {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+PathStatus, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&st) != nil || st.Node == "" {
		return nil
	}
	return &st
}
