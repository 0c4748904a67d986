package gbfs

import (
	"time"

	spec "github.com/causeway-go/causeway/gbfs"
)

// Kind says which file a Record came from.
type Kind uint8

// Record kinds.
const (
	KindStatus      Kind = iota // a station_status row: Record.Status
	KindInformation             // a station_information row: Record.Info
)

func (k Kind) String() string {
	if k == KindInformation {
		return spec.FeedStationInformation
	}
	return spec.FeedStationStatus
}

// Record is what flows through the topology: one station's row of
// station_status or of station_information, normalised from either GBFS
// version, and, for a status row whose state differs from the station's
// previous row, the Change the processors computed.
type Record struct {
	Kind   Kind
	Status spec.StationStatus      // KindStatus
	Info   spec.StationInformation // KindInformation
	// Change is set by the processors on a status row whose state differs
	// from the station's previous row; nil otherwise.
	Change *Change
}

// StationID returns the record's station.
func (r *Record) StationID() string {
	if r.Kind == KindInformation {
		return r.Info.StationID
	}
	return r.Status.StationID
}

// Change is one row of station_changes: what differed between a station's
// status row (At) and its previous one (PreviousAt), in last_reported
// order.
type Change struct {
	StationID   string    `json:"station_id"`
	At          time.Time `json:"at"`
	PreviousAt  time.Time `json:"previous_at"`
	BikesBefore int       `json:"bikes_before"`
	BikesAfter  int       `json:"bikes_after"`
	DocksBefore int       `json:"docks_before"`
	DocksAfter  int       `json:"docks_after"`
	// Kind names the most significant thing that happened; see the Change*
	// constants.
	Kind string `json:"kind"`
}

// Change kinds, most significant first: a change is given the first that
// applies. A station is in service when it is installed, renting and
// returning.
const (
	ChangeWentOffline   = "went_offline"   // was in service, is not
	ChangeBackOnline    = "back_online"    // was out of service, is in service
	ChangeStatusChanged = "status_changed" // out of service before and after, flags differ
	ChangeBecameEmpty   = "became_empty"   // the last bike left
	ChangeBecameFull    = "became_full"    // the last dock filled
	ChangeBikesTaken    = "bikes_taken"    // fewer bikes available
	ChangeBikesReturned = "bikes_returned" // more bikes available
	ChangeDocksChanged  = "docks_changed"  // same bikes, other available docks
)

// state is what the change log compares: the state of a station row.
type state struct {
	at                            time.Time
	bikes, docks                  int
	installed, renting, returning bool
}

func stateOf(s spec.StationStatus) state {
	return state{at: s.LastReported, bikes: s.NumBikesAvailable, docks: s.NumDocksAvailable,
		installed: s.IsInstalled, renting: s.IsRenting, returning: s.IsReturning}
}

func (s state) inService() bool { return s.installed && s.renting && s.returning }

// same reports whether s and o have the same state, whatever their times.
func (s state) same(o state) bool {
	return s.bikes == o.bikes && s.docks == o.docks &&
		s.installed == o.installed && s.renting == o.renting && s.returning == o.returning
}

// changeKind names the most significant difference from before to after;
// the view station_changes_lag computes the same in SQL.
func changeKind(before, after state) string {
	switch {
	case before.inService() && !after.inService():
		return ChangeWentOffline
	case !before.inService() && after.inService():
		return ChangeBackOnline
	case before.installed != after.installed || before.renting != after.renting || before.returning != after.returning:
		return ChangeStatusChanged
	case after.bikes == 0 && before.bikes > 0:
		return ChangeBecameEmpty
	case after.docks == 0 && before.docks > 0:
		return ChangeBecameFull
	case after.bikes < before.bikes:
		return ChangeBikesTaken
	case after.bikes > before.bikes:
		return ChangeBikesReturned
	}
	return ChangeDocksChanged
}

// diff returns the change from before to after, or nil if their states
// are the same.
func diff(id string, before, after state) *Change {
	if before.same(after) {
		return nil
	}
	return &Change{StationID: id, At: after.at, PreviousAt: before.at,
		BikesBefore: before.bikes, BikesAfter: after.bikes, DocksBefore: before.docks, DocksAfter: after.docks,
		Kind: changeKind(before, after)}
}
