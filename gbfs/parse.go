package gbfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The Parse functions return an error only for a document that cannot be
// read at all (not JSON, not an object, a field of the wrong kind); the
// error wraps encoding/json's, whose Offset says where. A station entry
// with missing fields is returned as it is: its Validate says what is wrong.

// envelope is any GBFS file, read leniently.
type envelope struct {
	LastUpdated lenientTime     `json:"last_updated"`
	TTL         lenientInt      `json:"ttl"`
	Version     string          `json:"version"`
	Data        json.RawMessage `json:"data"`
}

func (e envelope) header() Header {
	h := Header{Version: e.Version, LastUpdated: e.LastUpdated.t, TTL: time.Duration(e.TTL.n) * time.Second}
	if h.Version == "" {
		switch e.LastUpdated.kind {
		case kindString:
			h.Version = "3.0"
		case kindNumber:
			h.Version = "2.x"
		}
	}
	return h
}

func readEnvelope(feed string, doc []byte) (envelope, error) {
	var e envelope
	if err := json.Unmarshal(doc, &e); err != nil {
		return e, fmt.Errorf("gbfs: %s: %w", feed, err)
	}
	return e, nil
}

// ParseHeader reads the last_updated, ttl and version of any GBFS file.
func ParseHeader(doc []byte) (Header, error) {
	e, err := readEnvelope("header", doc)
	return e.header(), err
}

// Freshness returns a document's last_updated and ttl: the shape of
// producers/poll's Freshness hook.
func Freshness(doc []byte) (lastUpdated time.Time, ttl time.Duration, err error) {
	h, err := ParseHeader(doc)
	return h.LastUpdated, h.TTL, err
}

// StationStatusFeed is a parsed station_status file.
type StationStatusFeed struct {
	Header
	Stations []StationStatus
}

type stationStatusEntry struct {
	StationID            lenientString `json:"station_id"`
	NumBikesAvailable    *lenientInt   `json:"num_bikes_available"`
	NumBikesDisabled     *lenientInt   `json:"num_bikes_disabled"`
	NumVehiclesAvailable *lenientInt   `json:"num_vehicles_available"`
	NumVehiclesDisabled  *lenientInt   `json:"num_vehicles_disabled"`
	NumDocksAvailable    lenientInt    `json:"num_docks_available"`
	NumDocksDisabled     lenientInt    `json:"num_docks_disabled"`
	IsInstalled          lenientBool   `json:"is_installed"`
	IsRenting            lenientBool   `json:"is_renting"`
	IsReturning          lenientBool   `json:"is_returning"`
	LastReported         lenientTime   `json:"last_reported"`
}

// ParseStationStatus parses a station_status file of either version.
func ParseStationStatus(doc []byte) (StationStatusFeed, error) {
	e, err := readEnvelope(FeedStationStatus, doc)
	if err != nil {
		return StationStatusFeed{}, err
	}
	var data struct {
		Stations []stationStatusEntry `json:"stations"`
	}
	if err := unmarshalData(FeedStationStatus, e.Data, &data); err != nil {
		return StationStatusFeed{}, err
	}
	f := StationStatusFeed{Header: e.header(), Stations: make([]StationStatus, len(data.Stations))}
	for i, w := range data.Stations {
		f.Stations[i] = StationStatus{
			StationID:         w.StationID.s,
			LastReported:      w.LastReported.t,
			NumBikesAvailable: firstInt(w.NumVehiclesAvailable, w.NumBikesAvailable),
			NumBikesDisabled:  firstInt(w.NumVehiclesDisabled, w.NumBikesDisabled),
			NumDocksAvailable: w.NumDocksAvailable.n,
			NumDocksDisabled:  w.NumDocksDisabled.n,
			IsInstalled:       w.IsInstalled.b,
			IsRenting:         w.IsRenting.b,
			IsReturning:       w.IsReturning.b,
		}
	}
	return f, nil
}

// SplitStationStatus returns the stations of a station_status file: the
// shape of producers/poll's Split hook.
func SplitStationStatus(doc []byte) ([]StationStatus, error) {
	f, err := ParseStationStatus(doc)
	return f.Stations, err
}

// StationInformationFeed is a parsed station_information file.
type StationInformationFeed struct {
	Header
	Stations []StationInformation
}

type stationInformationEntry struct {
	StationID lenientString `json:"station_id"`
	Name      localized     `json:"name"`
	ShortName localized     `json:"short_name"`
	Lat       lenientFloat  `json:"lat"`
	Lon       lenientFloat  `json:"lon"`
	Address   string        `json:"address"`
	Capacity  lenientInt    `json:"capacity"`
}

// ParseStationInformation parses a station_information file of either
// version; localised names are read in lang (the first translation when
// there is none in lang, or when lang is "").
func ParseStationInformation(doc []byte, lang string) (StationInformationFeed, error) {
	e, err := readEnvelope(FeedStationInformation, doc)
	if err != nil {
		return StationInformationFeed{}, err
	}
	var data struct {
		Stations []stationInformationEntry `json:"stations"`
	}
	if err := unmarshalData(FeedStationInformation, e.Data, &data); err != nil {
		return StationInformationFeed{}, err
	}
	f := StationInformationFeed{Header: e.header(), Stations: make([]StationInformation, len(data.Stations))}
	for i, w := range data.Stations {
		f.Stations[i] = StationInformation{
			StationID: w.StationID.s,
			Name:      w.Name.in(lang),
			ShortName: w.ShortName.in(lang),
			Lat:       w.Lat.f,
			Lon:       w.Lon.f,
			Address:   w.Address,
			Capacity:  w.Capacity.n,
		}
	}
	return f, nil
}

// SplitStationInformation returns a Split hook that parses
// station_information files with names in lang.
func SplitStationInformation(lang string) func(doc []byte) ([]StationInformation, error) {
	return func(doc []byte) ([]StationInformation, error) {
		f, err := ParseStationInformation(doc, lang)
		return f.Stations, err
	}
}

// ParseSystemInformation parses a system_information file of either
// version, its name in lang (or the first translation).
func ParseSystemInformation(doc []byte, lang string) (Header, SystemInformation, error) {
	e, err := readEnvelope(FeedSystemInformation, doc)
	if err != nil {
		return Header{}, SystemInformation{}, err
	}
	var data struct {
		SystemID  lenientString `json:"system_id"`
		Name      localized     `json:"name"`
		Timezone  string        `json:"timezone"`
		Language  string        `json:"language"`
		Languages []string      `json:"languages"`
	}
	if err := unmarshalData(FeedSystemInformation, e.Data, &data); err != nil {
		return Header{}, SystemInformation{}, err
	}
	si := SystemInformation{SystemID: data.SystemID.s, Name: data.Name.in(lang), Timezone: data.Timezone, Languages: data.Languages}
	if len(si.Languages) == 0 && data.Language != "" {
		si.Languages = []string{data.Language}
	}
	return e.header(), si, nil
}

// ParseDiscovery parses a gbfs.json of either version. A v2.3 file lists
// feeds per language: lang picks one (if it is not there, the
// alphabetically first language is read).
func ParseDiscovery(doc []byte, lang string) (Discovery, error) {
	e, err := readEnvelope(FeedDiscovery, doc)
	if err != nil {
		return Discovery{}, err
	}
	d := Discovery{Header: e.header()}
	var probe map[string]json.RawMessage
	if err := unmarshalData(FeedDiscovery, e.Data, &probe); err != nil {
		return Discovery{}, err
	}
	if raw, ok := probe["feeds"]; ok && raw[0] == '[' { // v3.0
		if err := json.Unmarshal(raw, &d.Feeds); err != nil {
			return Discovery{}, fmt.Errorf("gbfs: %s: data.feeds: %w", FeedDiscovery, err)
		}
		return d, nil
	}
	for l := range probe {
		d.Languages = append(d.Languages, l)
	}
	slices.Sort(d.Languages)
	if len(d.Languages) == 0 {
		return d, nil
	}
	d.Language = d.Languages[0]
	if _, ok := probe[lang]; ok {
		d.Language = lang
	}
	var list V2FeedList
	if err := json.Unmarshal(probe[d.Language], &list); err != nil {
		return Discovery{}, fmt.Errorf("gbfs: %s: data.%s: %w", FeedDiscovery, d.Language, err)
	}
	d.Feeds = list.Feeds
	return d, nil
}

// unmarshalData reads data into v; a missing data is an empty one. Errors
// carry offsets within the data object.
func unmarshalData(feed string, data json.RawMessage, v any) error {
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("gbfs: %s: data: %w", feed, err)
	}
	return nil
}

func firstInt(a, b *lenientInt) int {
	if a != nil {
		return a.n
	}
	if b != nil {
		return b.n
	}
	return 0
}

// Lenient scalars: what real feeds send besides what the spec says.

type valueKind uint8

const (
	kindAbsent valueKind = iota
	kindNumber
	kindString
)

// lenientTime reads POSIX seconds (integer or fractional) or an RFC 3339
// string, in UTC.
type lenientTime struct {
	t    time.Time
	kind valueKind
}

func (t *lenientTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		p, err := time.Parse(time.RFC3339, s)
		if err != nil {
			// Some feeds quote POSIX seconds.
			if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && validSeconds(f) {
				t.t, t.kind = unixFloat(f), kindNumber
				return nil
			}
			return fmt.Errorf("time %q: %w", cut(s), err)
		}
		t.t, t.kind = p.UTC(), kindString
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || !validSeconds(f) {
		return fmt.Errorf("time %s: not POSIX seconds nor an RFC 3339 string", cut(string(b)))
	}
	t.t, t.kind = unixFloat(f), kindNumber
	return nil
}

func validSeconds(f float64) bool { return !math.IsNaN(f) && f >= 0 && f < 1e11 }

func unixFloat(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// lenientInt reads an integer, an integral float, or either as a string.
type lenientInt struct{ n int }

func (n *lenientInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return fmt.Errorf("integer %s: not an integer", cut(string(b)))
	}
	n.n = int(f)
	return nil
}

// lenientFloat reads a number or a number as a string.
type lenientFloat struct{ f float64 }

func (f *lenientFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("number %s: %w", cut(string(b)), err)
	}
	f.f = v
	return nil
}

// lenientBool reads true/false, 0/1 (GBFS 1.x) or either as a string.
type lenientBool struct{ b bool }

func (v *lenientBool) UnmarshalJSON(b []byte) error {
	switch string(bytes.Trim(b, `"`)) {
	case "true", "1":
		v.b = true
	case "false", "0", "null":
		v.b = false
	default:
		return fmt.Errorf("boolean %s: not true, false, 0 or 1", cut(string(b)))
	}
	return nil
}

// lenientString reads a string or a number (some feeds send numeric ids).
type lenientString struct{ s string }

func (v *lenientString) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, &v.s)
	case b[0] == '-' || b[0] >= '0' && b[0] <= '9':
		v.s = string(b)
		return nil
	}
	return fmt.Errorf("string %s: not a string nor a number", cut(string(b)))
}

// localized reads a v3.0 array of {text, language} or a v2.3 plain string.
type localized []LocalizedText

func (l *localized) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = localized{{Text: s}}
		return nil
	}
	return json.Unmarshal(b, (*[]LocalizedText)(l))
}

func (l localized) in(lang string) string {
	for _, t := range l {
		if t.Language == lang {
			return t.Text
		}
	}
	if len(l) > 0 {
		return l[0].Text
	}
	return ""
}

// cut shortens s for an error message.
func cut(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
