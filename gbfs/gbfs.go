// Package gbfs reads and writes GBFS (General Bikeshare Feed Specification)
// documents of versions 2.3 and 3.0: the discovery file gbfs.json,
// system_information, station_information and station_status.
//
// The Parse functions accept either version (and the common deviations of
// real feeds: ids as numbers, booleans as 0/1, times as POSIX seconds or
// RFC 3339 strings in either version) and return one normalised record per
// station, so a pipeline handles both versions with the same code:
// StationStatus (v2.3 num_bikes_available and v3.0 num_vehicles_available
// are both NumBikesAvailable; last_reported is a time.Time in UTC) and
// StationInformation (a v3.0 localised name resolved to one language).
//
// The V2* and V3* types are the wire documents, for writing feeds (the fake
// server in gbfstest uses them).
//
// SplitStationStatus, SplitStationInformation and Freshness have the shapes
// the HTTP polling producer (producers/poll) expects of its Split and
// Freshness hooks.
package gbfs

import (
	"errors"
	"fmt"
	"time"
)

// Header is what every GBFS file says about itself.
type Header struct {
	// Version is the document's "version" ("2.3", "3.0"). When the field is
	// absent it is inferred: "3.0" if last_updated is an RFC 3339 string,
	// "2.x" if it is a number.
	Version string
	// LastUpdated is when the publisher last updated the data, in UTC.
	LastUpdated time.Time
	// TTL is how long the data will stay as it is: the next update is due at
	// LastUpdated + TTL. 0 means the data is always being refreshed.
	TTL time.Duration
}

// Major returns the major version, 2 or 3 (0 if unknown).
func (h Header) Major() int {
	if h.Version == "" {
		return 0
	}
	switch h.Version[0] {
	case '1', '2':
		return 2 // 1.x documents read as 2.x ones
	case '3':
		return 3
	}
	return 0
}

// StationStatus is the normalised state of one station at LastReported:
// one row of station_status, in either version.
type StationStatus struct {
	StationID string `json:"station_id"`
	// LastReported is when the station last reported its state, in UTC.
	// A station that has not reported since the previous document keeps
	// its LastReported: (StationID, LastReported) identifies a report.
	LastReported time.Time `json:"last_reported"`
	// NumBikesAvailable is v2.3's num_bikes_available or v3.0's
	// num_vehicles_available; NumBikesDisabled likewise.
	NumBikesAvailable int  `json:"num_bikes_available"`
	NumBikesDisabled  int  `json:"num_bikes_disabled"`
	NumDocksAvailable int  `json:"num_docks_available"`
	NumDocksDisabled  int  `json:"num_docks_disabled"`
	IsInstalled       bool `json:"is_installed"`
	IsRenting         bool `json:"is_renting"`
	IsReturning       bool `json:"is_returning"`
}

// Validate reports what makes s unusable as a record: an empty station id,
// a missing last_reported, a negative count.
func (s StationStatus) Validate() error {
	var errs []error
	if s.StationID == "" {
		errs = append(errs, errors.New("station_id is empty"))
	}
	if s.LastReported.IsZero() {
		errs = append(errs, fmt.Errorf("station %q: last_reported is missing", s.StationID))
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"num_bikes_available", s.NumBikesAvailable}, {"num_bikes_disabled", s.NumBikesDisabled},
		{"num_docks_available", s.NumDocksAvailable}, {"num_docks_disabled", s.NumDocksDisabled},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("station %q: %s must be >= 0, got %d", s.StationID, f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// SameState reports whether s and o describe the same state (bikes, docks,
// installed, renting, returning), whatever their ids and times.
func (s StationStatus) SameState(o StationStatus) bool {
	return s.NumBikesAvailable == o.NumBikesAvailable && s.NumBikesDisabled == o.NumBikesDisabled &&
		s.NumDocksAvailable == o.NumDocksAvailable && s.NumDocksDisabled == o.NumDocksDisabled &&
		s.IsInstalled == o.IsInstalled && s.IsRenting == o.IsRenting && s.IsReturning == o.IsReturning
}

// Equal reports whether s and o are the same report: same station, same
// last_reported (to the nanosecond, whatever the location) and same state.
func (s StationStatus) Equal(o StationStatus) bool {
	return s.StationID == o.StationID && s.LastReported.Equal(o.LastReported) && s.SameState(o)
}

// Key identifies one report of one station.
type Key struct {
	StationID    string
	LastReported int64 // POSIX seconds
}

// Key returns s's (station_id, last_reported).
func (s StationStatus) Key() Key { return Key{s.StationID, s.LastReported.Unix()} }

// StationInformation is the normalised description of one station: one row
// of station_information, in either version.
type StationInformation struct {
	StationID string `json:"station_id"`
	// Name is the station's name in the language asked for (the first
	// translation if there is none in it).
	Name      string  `json:"name"`
	ShortName string  `json:"short_name,omitempty"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	Address   string  `json:"address,omitempty"`
	// Capacity is the number of docks; 0 when the feed does not say.
	Capacity int `json:"capacity"`
}

// Validate reports what makes i unusable: an empty id or name, a position
// off the globe, a negative capacity.
func (i StationInformation) Validate() error {
	var errs []error
	if i.StationID == "" {
		errs = append(errs, errors.New("station_id is empty"))
	}
	if i.Name == "" {
		errs = append(errs, fmt.Errorf("station %q: name is empty", i.StationID))
	}
	if i.Lat < -90 || i.Lat > 90 || i.Lon < -180 || i.Lon > 180 {
		errs = append(errs, fmt.Errorf("station %q: position (%v, %v) is off the globe", i.StationID, i.Lat, i.Lon))
	}
	if i.Capacity < 0 {
		errs = append(errs, fmt.Errorf("station %q: capacity must be >= 0, got %d", i.StationID, i.Capacity))
	}
	return errors.Join(errs...)
}

// SystemInformation is the normalised system_information.
type SystemInformation struct {
	SystemID  string
	Name      string // in the language asked for, or the first
	Timezone  string
	Languages []string // v2.3's language, or v3.0's languages
}

// Discovery is a parsed gbfs.json: the files a system publishes.
type Discovery struct {
	Header
	// Language is the language whose feed list was read (v2.3 lists feeds
	// per language; v3.0 has one list, and Language is "").
	Language string
	// Languages are the languages a v2.3 discovery file lists feeds for.
	Languages []string
	Feeds     []FeedLink
}

// URL returns the URL of the named feed (e.g. FeedStationStatus), or "".
func (d Discovery) URL(name string) string {
	for _, f := range d.Feeds {
		if f.Name == name {
			return f.URL
		}
	}
	return ""
}
