package sim

import (
	"fmt"
	"math"
	"time"
)

// Two delays bound a (write, router) pair from below, and the report names
// each for what it is:
//
//   - the physical bound: light in optical fibre along the great circle
//     between the two regions' locations, km / fibreKmPerMs one way (0
//     inside a region). No strategy on any real network beats it, and the
//     simulator guarantees none does here: explicit links may not be faster
//     (validatePhysical), derived ones are not (one way 2ms + km/150 from RTT =
//     4ms + km/75, against km/204), and every path a write takes from its
//     controller to a router is a chain of links, so by the triangle
//     inequality of great-circle distances it is no shorter than the direct
//     one. It is the bound the plot draws and the report checks.
//   - the modelled direct path: the one-way base delay the model gives the
//     pair (RegionDelay: latency.intra, an explicit link, or RTT = 4ms +
//     km/75 from Corrosion's simulator, which includes real routes'
//     detours and equipment). It is what a message sent straight from the
//     controller to the router would take without jitter: the reference of
//     excess and stretch, not a physical limit.

// fibreKmPerMs is the speed of light in single-mode fibre: c / 1.4682 (the
// group index of ITU-T G.652 fibre at 1550 nm), about 204 km per ms.
const fibreKmPerMs = 299792.458 / 1.4682 / 1000

// PhysicalDelay returns the one-way time light in fibre takes along the
// great circle between regions a and b (indexes into Regions): 0 inside a
// region, km / 204 ms between two regions. ok is false when either region
// has no location, so that no bound is known.
func (t *Topology) PhysicalDelay(a, b int) (d time.Duration, ok bool) {
	if a == b {
		return 0, true
	}
	la, lb := t.Regions[a].Location, t.Regions[b].Location
	if la == nil || lb == nil {
		return 0, false
	}
	km := greatCircleKm(*la, *lb)
	return time.Duration(km / fibreKmPerMs * float64(time.Millisecond)), true
}

// validatePhysical refuses explicit links faster than light in fibre
// between two located regions: a model that beats physics would let a
// strategy report a delay below the physical bound.
func (t *Topology) validatePhysical() error {
	index := make(map[string]int, len(t.Regions))
	for i, r := range t.Regions {
		index[r.Name] = i
	}
	for i, l := range t.Latency.Links {
		a, b := index[l.A], index[l.B]
		phys, ok := t.PhysicalDelay(a, b)
		if !ok || l.OneWay >= phys {
			continue
		}
		km := greatCircleKm(*t.Regions[a].Location, *t.Regions[b].Location)
		return fmt.Errorf("latency.links[%d]: %v between %s and %s is faster than light in fibre over their %.0f km (%.1fms one way)",
			i, l.OneWay, l.A, l.B, km, msOf(phys))
	}
	return nil
}

// msOf converts a duration to float milliseconds.
func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// physicalByClass returns the physical bound in ms of each region pair
// class (from*R+to), NaN where no bound is known.
func physicalByClass(t *Topology) []float64 {
	R := len(t.Regions)
	out := make([]float64, R*R)
	for a := range R {
		for b := range R {
			if d, ok := t.PhysicalDelay(a, b); ok {
				out[a*R+b] = msOf(d)
			} else {
				out[a*R+b] = math.NaN()
			}
		}
	}
	return out
}
