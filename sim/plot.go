package sim

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Plot geometry, in SVG user units (pixels).
const (
	plotW, plotH             = 1000, 520
	padL, padR, padT, padB   = 80, 290, 50, 80
	plotMinMs, plotMaxMsCeil = 0.1, 1e6
)

// palette holds distinguishable colours for strategies (Okabe-Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"}

// WritePlot writes an SVG chart: the CDF of the fault-free end-to-end
// delay of each strategy (request reaching a controller to enforceable at
// the router) on a logarithmic time axis, with the physical bound (light
// in fibre) dashed and the modelled direct path dotted. Only generic font
// families are named, so the chart needs no fonts from the network.
func (rep *Report) WritePlot(w io.Writer) error {
	var curves []plotCurve
	var direct, physical []CDFPoint
	var directQ, physicalQ *Quantiles4
	for _, r := range rep.Results {
		// The issue latency (request to acknowledgement) is part of
		// each curve; the legend gives it so that a strategy whose
		// writes wait for a leader and a quorum (raft) shows where its
		// delay comes from, on the chart alone.
		curves = append(curves, plotCurve{label: r.Strategy, detail: fmt.Sprintf("p50 %s ms, p99 %s ms", ms(r.EndToEndMs.P50), ms(r.EndToEndMs.P99)),
			note: fmt.Sprintf("issue p50 %s, p99 %s ms", ms(r.IssueLatencyMs.P50), ms(r.IssueLatencyMs.P99)), pts: r.EndToEndCDF})
		if direct == nil {
			direct, directQ = r.DirectCDF, &r.DirectMs
		}
		if physical == nil {
			physical, physicalQ = r.PhysicalCDF, r.PhysicalMs
		}
	}
	var bounds []plotCurve
	if physicalQ != nil {
		bounds = append(bounds, plotCurve{label: "light in fibre",
			detail: fmt.Sprintf("physical bound, p99 %s ms", ms(physicalQ.P99)), pts: physical})
	}
	if directQ != nil {
		bounds = append(bounds, plotCurve{label: "modelled direct path",
			detail: fmt.Sprintf("p50 %s ms, p99 %s ms", ms(directQ.P50), ms(directQ.P99)), pts: direct})
	}
	title := fmt.Sprintf("End-to-end delay CDF: %s (seed %d, %s mode)", rep.Topology, rep.Seed, rep.Mode)
	return writeCDFChart(w, title, curves, bounds)
}

// plotCurve is one curve of a CDF chart and its legend entry; color and
// dash, when set, override the style its index would give it.
type plotCurve struct {
	label, detail string
	note          string // a third legend line, if any
	pts           []CDFPoint
	color, dash   string
}

// boundStyles are the dash patterns of the bound curves: the physical
// bound dashed, the modelled direct path dotted.
var boundStyles = []struct{ color, dash string }{{"#222", ` stroke-dasharray="6 4"`}, {"#888", ` stroke-dasharray="2 3"`}}

// curveDashes vary the strategies' curves once the palette is used up.
var curveDashes = []string{"", ` stroke-dasharray="10 3"`, ` stroke-dasharray="3 2"`, ` stroke-dasharray="10 3 2 3"`, ` stroke-dasharray="1 3"`}

// writeCDFChart draws end-to-end delay CDFs on a log time axis with the
// bounds below them; with many curves the legend is compact.
func writeCDFChart(w io.Writer, title string, curves, bounds []plotCurve) error {
	lo, hi := math.Inf(1), 0.0
	extend := func(pts []CDFPoint) {
		for _, p := range pts {
			if p.Ms > 0 {
				lo = math.Min(lo, p.Ms)
			}
			hi = math.Max(hi, p.Ms)
		}
	}
	for _, c := range curves {
		extend(c.pts)
	}
	for _, c := range bounds {
		extend(c.pts)
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 1000
	}
	xmin := math.Max(plotMinMs, math.Pow(10, math.Floor(math.Log10(lo))))
	xmax := math.Min(plotMaxMsCeil, math.Pow(10, math.Ceil(math.Log10(math.Max(hi, xmin*10)))))
	if xmax <= xmin {
		xmax = xmin * 10
	}
	iw, ih := float64(plotW-padL-padR), float64(plotH-padT-padB)
	x := func(ms float64) float64 {
		if ms < xmin {
			ms = xmin
		}
		return padL + iw*(math.Log10(ms)-math.Log10(xmin))/(math.Log10(xmax)-math.Log10(xmin))
	}
	y := func(f float64) float64 { return padT + ih*(1-f) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="16" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))

	// Grid and axes.
	b.WriteString(`<g stroke="#ddd" stroke-width="1">` + "\n")
	for dec := xmin; dec <= xmax*1.0001; dec *= 10 {
		for m := 1; m < 10; m++ {
			v := dec * float64(m)
			if v > xmax*1.0001 {
				break
			}
			stroke := ""
			if m != 1 {
				stroke = ` stroke="#f0f0f0"`
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d"%s/>`+"\n", x(v), padT, x(v), plotH-padB, stroke)
		}
	}
	yTicks := []float64{0, 0.25, 0.5, 0.75, 0.9, 1}
	for _, f := range yTicks {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`+"\n", padL, y(f), plotW-padR, y(f))
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999" stroke-dasharray="2 3"/>`+"\n", padL, y(0.99), plotW-padR, y(0.99))
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" dominant-baseline="middle" fill="#666" font-size="11">p99</text>`+"\n", plotW-padR+4, y(0.99))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", padL, padT, iw, ih)
	for dec := xmin; dec <= xmax*1.0001; dec *= 10 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(dec), plotH-padB+18, timeLabel(dec))
	}
	for _, f := range yTicks {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%g</text>`+"\n", padL-8, y(f), f)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">end-to-end delay of each (write, router) pair: request reaching a controller to enforceable at the router (log scale)</text>`+"\n",
		padL+iw/2, plotH-padB+42)
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle" fill="#666" font-size="11">fault-free pairs; delays below %s (such as the physical bound of pairs inside a region, 0) are drawn at the left edge</text>`+"\n",
		padL+iw/2, plotH-padB+62, timeLabel(xmin))
	fmt.Fprintf(&b, `<text transform="translate(22 %.0f) rotate(-90)" text-anchor="middle">fraction of pairs applied</text>`+"\n", padT+ih/2)

	// Curves.
	line := func(pts []CDFPoint, color, dash string) {
		if len(pts) == 0 {
			return
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="`, color, dash)
		prev := 0.0
		for i, p := range pts {
			if i == 0 {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(p.Ms), y(0))
			} else {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(p.Ms), y(prev))
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", x(p.Ms), y(p.Frac))
			prev = p.Frac
		}
		b.WriteString("\"/>\n")
	}
	for i, c := range bounds {
		line(c.pts, boundStyles[i%len(boundStyles)].color, boundStyles[i%len(boundStyles)].dash)
	}
	style := func(i int) (string, string) {
		if c := curves[i]; c.color != "" {
			return c.color, c.dash
		}
		return palette[i%len(palette)], curveDashes[(i/len(palette))%len(curveDashes)]
	}
	for i, c := range curves {
		color, dash := style(i)
		line(c.pts, color, dash)
	}

	// Legend, right of the plot; one line per entry when there are many.
	lx, ly := plotW-padR+36, padT
	compact := len(curves)+len(bounds) > 8
	// Entries with a note take a third line.
	step := 44
	for _, c := range append(append([]plotCurve(nil), curves...), bounds...) {
		if c.note != "" {
			step = 60
		}
	}
	item := func(i int, color, dash string, c plotCurve) {
		if compact {
			text := c.label + ": " + c.detail
			if c.note != "" {
				text += "; " + c.note
			}
			yy := ly + 6 + 22*i
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, yy, lx+30, yy, color, dash)
			fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle" font-size="11">%s</text>`+"\n", lx+36, yy, html.EscapeString(text))
			return
		}
		yy := ly + 10 + step*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, yy, lx+30, yy, color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle" font-weight="bold">%s</text>`+"\n", lx+38, yy, html.EscapeString(c.label))
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle" fill="#444" font-size="12">%s</text>`+"\n", lx+38, yy+17, html.EscapeString(c.detail))
		if c.note != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle" fill="#444" font-size="12">%s</text>`+"\n", lx+38, yy+33, html.EscapeString(c.note))
		}
	}
	for i, c := range curves {
		color, dash := style(i)
		item(i, color, dash, c)
	}
	for i, c := range bounds {
		item(len(curves)+i, boundStyles[i%len(boundStyles)].color, boundStyles[i%len(boundStyles)].dash, c)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// timeLabel labels a tick of the time axis, given in ms.
func timeLabel(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%g s", v/1000)
	}
	return fmt.Sprintf("%g ms", v)
}
