package gbfstest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/causeway-go/causeway/gbfs"
)

// Per-station, per-second chances of the simulated events. With these a
// station sees a trip about once a minute, reports an unchanged state
// (a heartbeat) about every five minutes, and goes out of service about
// once every two hours, for about two minutes.
const (
	tripChance      = 1.0 / 60
	heartbeatChance = 1.0 / 300
	outageChance    = 1.0 / 7200
	recoveryChance  = 1.0 / 120
	disableChance   = 1.0 / 20 // of a trip: a bike is reported broken or repaired instead
)

// simStation is one simulated station.
type simStation struct {
	info   gbfs.StationInformation
	nameFR string
	status gbfs.StationStatus
}

// sim is the deterministic simulated system: the same seed, station count
// and start time give the same stations and the same events at the same
// simulated seconds, however the simulation is advanced.
type sim struct {
	rng      *rand.Rand
	at       time.Time // simulated up to and including this second
	stations []simStation
	reports  int64 // station reports simulated since the start
}

var streets = []string{"Harbour", "Maple", "Station", "Market", "Cedar", "Mill", "Bridge", "Park",
	"Church", "Victoria", "King", "Queen", "Elm", "Lake", "Hill", "River"}

func newSim(seed uint64, n int, start time.Time) *sim {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), at: start, stations: make([]simStation, n)}
	for i := range s.stations {
		st := &s.stations[i]
		capacity := 10 + s.rng.IntN(31)
		street := streets[s.rng.IntN(len(streets))]
		cross := 1 + s.rng.IntN(60)
		st.info = gbfs.StationInformation{
			StationID: fmt.Sprintf("S%05d", i+1),
			Name:      fmt.Sprintf("%s St & %s", street, ordinal(cross)),
			ShortName: fmt.Sprintf("%d", 1000+i),
			Lat:       45.50 + (s.rng.Float64()-0.5)*0.1,
			Lon:       -73.57 + (s.rng.Float64()-0.5)*0.14,
			Address:   fmt.Sprintf("%d %s Street", 1+s.rng.IntN(2000), street),
			Capacity:  capacity,
		}
		st.nameFR = fmt.Sprintf("rue %s / %de Avenue", street, cross)
		bikes := s.rng.IntN(capacity + 1)
		disabled := 0
		if bikes < capacity && s.rng.IntN(10) == 0 {
			disabled = 1
		}
		st.status = gbfs.StationStatus{
			StationID:         st.info.StationID,
			LastReported:      start.Add(-time.Duration(s.rng.IntN(600)) * time.Second),
			NumBikesAvailable: bikes,
			NumBikesDisabled:  disabled,
			NumDocksAvailable: capacity - bikes - disabled,
			IsInstalled:       true,
			IsRenting:         true,
			IsReturning:       true,
		}
		if s.rng.IntN(50) == 0 {
			st.status.IsRenting, st.status.IsReturning = false, false
		}
	}
	return s
}

func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return fmt.Sprintf("%d%s Ave", n, suffix)
}

// advance simulates every second after s.at up to and including to.
func (s *sim) advance(to time.Time) {
	for s.at.Before(to) {
		s.at = s.at.Add(time.Second)
		for i := range s.stations {
			s.step(&s.stations[i].status)
		}
	}
}

// step simulates one second of one station; a station that changes state
// (or sends a heartbeat) reports, and only then does its last_reported move.
func (s *sim) step(st *gbfs.StationStatus) {
	u := s.rng.Float64()
	inService := st.IsInstalled && st.IsRenting && st.IsReturning
	switch {
	case !inService:
		if u >= recoveryChance {
			return
		}
		st.IsInstalled, st.IsRenting, st.IsReturning = true, true, true
	case u < outageChance:
		if s.rng.IntN(4) == 0 {
			st.IsInstalled = false
		}
		st.IsRenting, st.IsReturning = false, false
	case u < outageChance+tripChance:
		s.trip(st)
	case u < outageChance+tripChance+heartbeatChance:
		// A heartbeat: same state, a new last_reported.
	default:
		return
	}
	st.LastReported = s.at
	s.reports++
}

// trip takes or returns a bike, or (rarely) reports one broken or repaired.
func (s *sim) trip(st *gbfs.StationStatus) {
	if s.rng.Float64() < disableChance {
		switch {
		case st.NumBikesDisabled > 0 && s.rng.IntN(2) == 0:
			st.NumBikesDisabled--
			st.NumBikesAvailable++
		case st.NumBikesAvailable > 0:
			st.NumBikesAvailable--
			st.NumBikesDisabled++
		}
		return
	}
	take := s.rng.IntN(2) == 0
	if st.NumBikesAvailable == 0 {
		take = false
	}
	if st.NumDocksAvailable == 0 {
		take = true
	}
	if take && st.NumBikesAvailable > 0 {
		st.NumBikesAvailable--
		st.NumDocksAvailable++
	} else if !take && st.NumDocksAvailable > 0 {
		st.NumBikesAvailable++
		st.NumDocksAvailable--
	}
}

// statuses returns a copy of every station's status.
func (s *sim) statuses() []gbfs.StationStatus {
	out := make([]gbfs.StationStatus, len(s.stations))
	for i := range s.stations {
		out[i] = s.stations[i].status
	}
	return out
}
