package sim

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// WriteCDFPlot writes the overlay of a sweep's end-to-end delay CDFs: one
// curve per point and strategy, each the seeds' CDFs averaged by rank,
// with the physical bound of the first point below them. A strategy keeps
// its colour across points; a point has its own dash pattern.
func (s *SweepReport) WriteCDFPlot(w io.Writer) error {
	var curves, bounds []plotCurve
	for i, p := range s.Points {
		strat := i % len(s.Sweep.Strategies)
		point := i / len(s.Sweep.Strategies)
		label := p.Strategy
		if p.Label != "" {
			label += " " + p.Label
		}
		detail := "p99 n/a"
		if m, ok := p.Metrics["end_to_end_ms.p99"]; ok {
			detail = fmt.Sprintf("p99 %s ms", ms(m.Mean))
		}
		curves = append(curves, plotCurve{label: label, detail: detail, pts: p.EndToEndCDF,
			color: palette[strat%len(palette)], dash: curveDashes[point%len(curveDashes)]})
		if bounds == nil && p.PhysicalCDF != nil {
			detail := "the physical bound"
			if m, ok := p.Metrics["physical_ms.p99"]; ok {
				detail = fmt.Sprintf("p99 %s ms", ms(m.Mean))
			}
			bounds = []plotCurve{{label: "light in fibre (bound)", detail: detail, pts: p.PhysicalCDF}}
		}
	}
	return writeCDFChart(w, fmt.Sprintf("End-to-end delay CDF: %s, %s", s.Topology, s.seedsLabel()), curves, bounds)
}

func (s *SweepReport) seedsLabel() string {
	d := s.Sweep.Seeds
	if len(d) == 1 {
		return fmt.Sprintf("seed %d", d[0])
	}
	return fmt.Sprintf("mean of seeds %d-%d", d[0], d[len(d)-1])
}

// settingNumber reads a setting's value as a number for an axis: 5% is 5,
// 250ms is 250 (durations in ms), 50/s is 50; ok is false otherwise.
func settingNumber(v string) (float64, bool) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSuffix(v, "%"), "/s"), 64); err == nil {
		return f, true
	}
	if d, err := time.ParseDuration(v); err == nil {
		return msOf(d), true
	}
	return 0, false
}

// WriteMetricPlot writes a metric against the first swept setting: one
// line per strategy (and per value of the other swept settings), the
// mean over seeds with its 95% confidence interval as an error bar. The
// x axis is linear when every value is a number, else evenly spaced; the
// y axis logarithmic when the means span more than 20 times.
func (s *SweepReport) WriteMetricPlot(w io.Writer, metric string) error {
	if len(s.Sweep.Keys) == 0 {
		return fmt.Errorf("a metric plot needs a swept setting (--sweep)")
	}
	key, values := s.Sweep.Keys[0], s.Sweep.Values[0]
	xs := make([]float64, len(values))
	numeric := true
	for i, v := range values {
		f, ok := settingNumber(v)
		numeric = numeric && ok
		xs[i] = f
	}
	if !numeric {
		for i := range xs {
			xs[i] = float64(i)
		}
	}
	type series struct {
		label  string
		points []struct{ x, mean, lo, hi float64 }
	}
	var all []*series
	byLabel := map[string]*series{}
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for _, p := range s.Points {
		m, ok := p.Metrics[metric]
		if !ok {
			continue
		}
		var others []string
		for _, k := range s.Sweep.Keys[1:] {
			others = append(others, k+"="+p.Settings[k])
		}
		label := strings.Join(append([]string{p.Strategy}, others...), " ")
		sr := byLabel[label]
		if sr == nil {
			sr = &series{label: label}
			byLabel[label] = sr
			all = append(all, sr)
		}
		x := xs[indexOf(values, p.Settings[key])]
		sr.points = append(sr.points, struct{ x, mean, lo, hi float64 }{x, m.Mean, m.CILow, m.CIHigh})
		ylo, yhi = math.Min(ylo, math.Min(m.CILow, m.Mean)), math.Max(yhi, math.Max(m.CIHigh, m.Mean))
	}
	if len(all) == 0 {
		return fmt.Errorf("no point has metric %s", metric)
	}
	logY := ylo > 0 && yhi/ylo > 20
	if !logY {
		ylo = math.Min(0, ylo)
		if yhi <= ylo {
			yhi = ylo + 1
		}
		yhi *= 1.05
	} else {
		ylo, yhi = math.Pow(10, math.Floor(math.Log10(ylo))), math.Pow(10, math.Ceil(math.Log10(yhi)))
	}
	xlo, xhi := xs[0], xs[0]
	for _, x := range xs {
		xlo, xhi = math.Min(xlo, x), math.Max(xhi, x)
	}
	if xhi == xlo {
		xlo, xhi = xlo-1, xhi+1
	}
	pad := (xhi - xlo) * 0.05
	xlo, xhi = xlo-pad, xhi+pad
	iw, ih := float64(plotW-padL-padR), float64(plotH-padT-padB)
	X := func(v float64) float64 { return padL + iw*(v-xlo)/(xhi-xlo) }
	Y := func(v float64) float64 {
		if logY {
			v = math.Max(v, ylo)
			return padT + ih*(1-(math.Log10(v)-math.Log10(ylo))/(math.Log10(yhi)-math.Log10(ylo)))
		}
		return padT + ih*(1-(v-ylo)/(yhi-ylo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="16" font-weight="bold">%s against %s: %s, %s</text>`+"\n",
		padL, html.EscapeString(metric), html.EscapeString(key), html.EscapeString(s.Topology), html.EscapeString(s.seedsLabel()))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", padL, padT, iw, ih)
	// y ticks
	var yt []float64
	if logY {
		for v := ylo; v <= yhi*1.0001; v *= 10 {
			yt = append(yt, v)
		}
	} else {
		step := niceStep((yhi - ylo) / 5)
		for k := math.Ceil(ylo / step); k*step <= yhi; k++ {
			yt = append(yt, k*step)
		}
	}
	for _, v := range yt {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", padL, Y(v), plotW-padR, Y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", padL-8, Y(v), strconv.FormatFloat(round(v)+0, 'g', 4, 64))
	}
	for i, v := range values {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", X(xs[i]), padT, X(xs[i]), plotH-padB)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", X(xs[i]), plotH-padB+18, html.EscapeString(v))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%s</text>`+"\n", padL+iw/2, plotH-padB+42, html.EscapeString(key))
	scale := ""
	if logY {
		scale = " (log scale)"
	}
	fmt.Fprintf(&b, `<text transform="translate(22 %.0f) rotate(-90)" text-anchor="middle">%s, mean and 95%% CI%s</text>`+"\n",
		padT+ih/2, html.EscapeString(metric), scale)
	for i, sr := range all {
		color, dash := palette[i%len(palette)], curveDashes[(i/len(palette))%len(curveDashes)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="`, color, dash)
		for _, p := range sr.points {
			fmt.Fprintf(&b, "%.1f,%.1f ", X(p.x), Y(p.mean))
		}
		b.WriteString("\"/>\n")
		for _, p := range sr.points {
			x := X(p.x)
			fmt.Fprintf(&b, `<path d="M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8" stroke="%s" fill="none"/>`+"\n",
				x, Y(p.lo), Y(p.hi), x-4, Y(p.lo), x-4, Y(p.hi), color)
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x, Y(p.mean), color)
		}
		yy := padT + 10 + 24*i
		lx := plotW - padR + 36
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, yy, lx+30, yy, color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", lx+38, yy, html.EscapeString(sr.label))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func indexOf(values []string, v string) int {
	for i, x := range values {
		if x == v {
			return i
		}
	}
	return 0
}

// niceStep rounds a tick step to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
