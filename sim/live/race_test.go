//go:build race

package live

// raceEnabled is set under the race detector, which slows real memberlist
// meshes so much that wall-clock timing no longer follows the model.
const raceEnabled = true
