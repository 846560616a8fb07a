package sim

import (
	"crypto/sha256"
	"encoding/hex"
)

// Provenance says how a report was made, so that two reports can be
// compared without guessing: the code, the topology in full, every
// parameter and the flags that shaped the result. It holds nothing that
// differs between two runs of the same inputs (no time, no host, no
// --workers), so the determinism of the report is kept.
type Provenance struct {
	// Commit is the certmesh commit meshsim was built from ("-dirty" when
	// the tree had changes), or "unknown".
	Commit string `json:"commit"`
	// Command is meshsim's arguments that shape the result, in order
	// (--workers, --quiet and output paths left out).
	Command []string `json:"command"`
	// TopologyFile is the path given to --topology, empty for the
	// built-in topology; Topology is its text as read and TopologySHA256
	// the hash of that text. Settings changed by --set are in Settings,
	// not in the text.
	TopologyFile   string `json:"topology_file,omitempty"`
	Topology       string `json:"topology_yaml"`
	TopologySHA256 string `json:"topology_sha256"`
	// Settings is every setting's value as the run used it (params.go):
	// the topology's network and workload and every strategy parameter.
	Settings map[string]string `json:"settings"`
	// Set lists the --set overrides as given.
	Set []string `json:"set,omitempty"`
}

// NewProvenance fills the topology's part of a Provenance; source is the
// topology's text.
func NewProvenance(commit, file string, source []byte, command, set []string, settings map[string]string) *Provenance {
	sum := sha256.Sum256(source)
	return &Provenance{
		Commit: commit, Command: command, TopologyFile: file, Topology: string(source),
		TopologySHA256: hex.EncodeToString(sum[:]), Settings: settings, Set: set,
	}
}
