package dashboard

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// sampleSet is one sample of every topology and panel: the JSON of
// api/topologies (with History) and of each event (without).
type sampleSet struct {
	Time       time.Time        `json:"time"`
	IntervalMS int64            `json:"interval_ms"`
	Topologies []topologySample `json:"topologies"`
	Panels     []panelSample    `json:"panels,omitempty"`
}

type panelSample struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Kind  string `json:"kind,omitempty"`
	Data  any    `json:"data"`
	Error string `json:"error,omitempty"`
}

// topologySample is a topology's state at one sample.
type topologySample struct {
	Name        string               `json:"name"`
	Description topology.Description `json:"description"`
	// Stats is Stats() as it is, so fields added to it later show on the
	// page without a change here.
	Stats        stages.Stats `json:"stats"`
	Point        point        `json:"point"` // rates and quantiles over the last interval
	Conservation conservation `json:"conservation"`
	Errors       []ErrorEntry `json:"errors"`
	History      []point      `json:"history,omitempty"`
}

// conservation checks emitted = acked + failed + dropped + in flight.
type conservation struct {
	Emitted  int64  `json:"emitted"`
	Acked    int64  `json:"acked"`
	Failed   int64  `json:"failed"`
	Dropped  int64  `json:"dropped"`
	InFlight int64  `json:"in_flight"`
	Holds    bool   `json:"holds"`
	Text     string `json:"text"`
}

// point is what the plots draw: per-second rates and the interval's
// quantiles, per stage.
type point struct {
	T          int64         `json:"t"` // Unix milliseconds
	Producer   producerPoint `json:"producer"`
	Processors stagePoint    `json:"processors"`
	Batchers   []batchPoint  `json:"batchers"`
	Acked      float64       `json:"acked"`  // per second
	Failed     float64       `json:"failed"` // per second
}

type producerPoint struct {
	In       float64 `json:"in"`      // emitted per second
	Out      float64 `json:"out"`     // delivered to processors per second
	Dropped  float64 `json:"dropped"` // per second
	Buffered int     `json:"buffered"`
	Capacity int     `json:"capacity"`
}

type stagePoint struct {
	In          float64 `json:"in"`
	Out         float64 `json:"out"`
	Failed      float64 `json:"failed"`
	Concurrency int     `json:"concurrency"`
	P50         float64 `json:"p50"` // handler latency, seconds
	P99         float64 `json:"p99"`
}

type batchPoint struct {
	Name string `json:"name"`
	stagePoint
	BatchSize float64 `json:"batch_size"` // mean over the interval
	Pending   int64   `json:"pending"`
}

// sample reads every topology and panel, appends to the ring and offers
// the event to the clients.
func (d *Dashboard) sample(now time.Time) {
	set := &sampleSet{Time: now, IntervalMS: d.interval.Milliseconds()}
	d.mu.Lock()
	prev := d.last
	d.mu.Unlock()
	for i, top := range d.tops {
		st := top.Stats()
		ts := topologySample{Name: st.Name, Description: top.Describe(), Stats: st, Errors: []ErrorEntry{}}
		if ts.Name == "" {
			ts.Name = ts.Description.Name
		}
		var before *stages.Stats
		var dt time.Duration
		if prev != nil {
			before, dt = &prev.Topologies[i].Stats, now.Sub(prev.Time)
		}
		ts.Point = makePoint(now, before, st, dt)
		ts.Conservation = conserve(st)
		if es, ok := top.(interface{ LatestErrors() []ErrorEntry }); ok {
			if e := es.LatestErrors(); e != nil {
				ts.Errors = e
			}
		}
		set.Topologies = append(set.Topologies, ts)
	}
	for _, p := range d.panels {
		set.Panels = append(set.Panels, readPanel(p))
	}
	msg, err := json.Marshal(set)
	if err != nil { // a panel's data json cannot encode: show why instead
		for i := range set.Panels {
			if _, perr := json.Marshal(set.Panels[i].Data); perr != nil {
				set.Panels[i].Data, set.Panels[i].Error = nil, perr.Error()
			}
		}
		msg, _ = json.Marshal(set)
	}
	event := make([]byte, 0, len(msg)+24)
	event = append(event, "event: sample\ndata: "...)
	event = append(event, msg...)
	event = append(event, "\n\n"...)

	d.mu.Lock()
	defer d.mu.Unlock()
	d.last, d.latest = set, event
	if prev != nil { // the first sample has no rates yet
		for i := range set.Topologies {
			r := append(d.ring[i], set.Topologies[i].Point)
			if len(r) > d.history {
				r = append(r[:0], r[len(r)-d.history:]...)
			}
			d.ring[i] = r
		}
	}
	d.broadcastLocked(event)
}

// readPanel calls p.Data, turning a panic into the panel's error.
func readPanel(p Panel) (ps panelSample) {
	ps = panelSample{Name: p.Name, Title: p.Title, Kind: p.Kind}
	if ps.Title == "" {
		ps.Title = p.Name
	}
	defer func() {
		if v := recover(); v != nil {
			ps.Data, ps.Error = nil, fmt.Sprintf("panel %q: panic: %v", p.Name, v)
		}
	}()
	if p.Data != nil {
		ps.Data = p.Data()
	}
	return ps
}

func conserve(st stages.Stats) conservation {
	c := conservation{Emitted: st.Producer.Emitted, Acked: st.Acked, Failed: st.Failed, Dropped: st.Dropped, InFlight: st.InFlight}
	sum := c.Acked + c.Failed + c.Dropped + c.InFlight
	c.Holds = sum == c.Emitted
	if c.Holds {
		c.Text = "holds"
	} else {
		c.Text = fmt.Sprintf("off by %d", c.Emitted-sum)
	}
	return c
}

// makePoint computes rates and interval quantiles from two samples dt
// apart; with no earlier sample, rates are zero and quantiles are over
// everything so far.
func makePoint(now time.Time, before *stages.Stats, st stages.Stats, dt time.Duration) point {
	var b stages.Stats
	if before != nil {
		b = *before
	}
	sec := dt.Seconds()
	rate := func(now, then int64) float64 {
		if sec <= 0 || before == nil {
			return 0
		}
		return float64(now-then) / sec
	}
	p := point{T: now.UnixMilli(),
		Producer: producerPoint{
			In: rate(st.Producer.Emitted, b.Producer.Emitted), Out: rate(st.Producer.Delivered, b.Producer.Delivered),
			Dropped: rate(st.Producer.Dropped, b.Producer.Dropped), Buffered: st.Producer.Buffered, Capacity: st.Producer.Capacity,
		},
		Acked: rate(st.Acked, b.Acked), Failed: rate(st.Failed, b.Failed),
	}
	lat := delta(st.Processors.Latency, b.Processors.Latency)
	p.Processors = stagePoint{
		In: rate(st.Processors.Received, b.Processors.Received), Out: rate(st.Processors.Forwarded, b.Processors.Forwarded),
		Failed: rate(st.Processors.Failed, b.Processors.Failed), Concurrency: st.Processors.Concurrency,
		P50: lat.Quantile(0.5), P99: lat.Quantile(0.99),
	}
	for _, bs := range st.Batchers {
		var old stages.BatcherStats
		for _, o := range b.Batchers {
			if o.Name == bs.Name {
				old = o
			}
		}
		lat := delta(bs.Latency, old.Latency)
		size := delta(bs.BatchSize, old.BatchSize)
		p.Batchers = append(p.Batchers, batchPoint{Name: bs.Name,
			stagePoint: stagePoint{
				In: rate(bs.Received, old.Received), Out: rate(bs.Acked+bs.Failed, old.Acked+old.Failed),
				Failed: rate(bs.Failed, old.Failed), Concurrency: bs.Concurrency,
				P50: lat.Quantile(0.5), P99: lat.Quantile(0.99),
			},
			BatchSize: size.Mean(), Pending: bs.Pending,
		})
	}
	return p
}

// delta is the histogram of the observations made between then and now
// (now itself when then is empty or does not match).
func delta(now, then stages.HistogramSnapshot) stages.HistogramSnapshot {
	if len(then.Counts) != len(now.Counts) || then.Count > now.Count {
		return now
	}
	d := stages.HistogramSnapshot{Bounds: now.Bounds, Counts: make([]uint64, len(now.Counts)),
		Count: now.Count - then.Count, Sum: now.Sum - then.Sum}
	for i := range now.Counts {
		d.Counts[i] = now.Counts[i] - then.Counts[i]
	}
	if len(d.Bounds) == 0 {
		return stages.HistogramSnapshot{}
	}
	return d
}
