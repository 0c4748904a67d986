package gbfs

import "time"

// The wire documents of GBFS v2.3 and v3.0, as a publisher writes them. A
// consumer should read documents with the Parse functions, which accept
// both versions (and the usual deviations of real feeds) and return the
// normalised records; these types are for producing documents, as the fake
// server in gbfstest does.

// Versions this package writes and reads.
const (
	V23 = "2.3"
	V30 = "3.0"
)

// Feed names of the files this package knows.
const (
	FeedDiscovery          = "gbfs"
	FeedSystemInformation  = "system_information"
	FeedStationInformation = "station_information"
	FeedStationStatus      = "station_status"
)

// V2Document is the envelope of every v2.3 file: POSIX-second times.
type V2Document[D any] struct {
	LastUpdated int64  `json:"last_updated"`
	TTL         int    `json:"ttl"`
	Version     string `json:"version"`
	Data        D      `json:"data"`
}

// V3Document is the envelope of every v3.0 file: RFC 3339 times.
type V3Document[D any] struct {
	LastUpdated time.Time `json:"last_updated"`
	TTL         int       `json:"ttl"`
	Version     string    `json:"version"`
	Data        D         `json:"data"`
}

// FeedLink is one entry of a discovery file's feed list.
type FeedLink struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// V2FeedList is the per-language value of a v2.3 gbfs.json's data.
type V2FeedList struct {
	Feeds []FeedLink `json:"feeds"`
}

// V2Discovery is the data of a v2.3 gbfs.json, keyed by language.
type V2Discovery map[string]V2FeedList

// V3Discovery is the data of a v3.0 gbfs.json.
type V3Discovery struct {
	Feeds []FeedLink `json:"feeds"`
}

// LocalizedText is one translation of a v3.0 localised string.
type LocalizedText struct {
	Text     string `json:"text"`
	Language string `json:"language"`
}

// V2SystemInformation is the data of a v2.3 system_information.json.
type V2SystemInformation struct {
	SystemID string `json:"system_id"`
	Language string `json:"language"`
	Name     string `json:"name"`
	Operator string `json:"operator,omitempty"`
	Timezone string `json:"timezone"`
}

// V3SystemInformation is the data of a v3.0 system_information.json.
type V3SystemInformation struct {
	SystemID         string          `json:"system_id"`
	Languages        []string        `json:"languages"`
	Name             []LocalizedText `json:"name"`
	Operator         []LocalizedText `json:"operator,omitempty"`
	OpeningHours     string          `json:"opening_hours"`
	FeedContactEmail string          `json:"feed_contact_email"`
	Timezone         string          `json:"timezone"`
}

// V2StationInformationData is the data of a v2.3 station_information.json.
type V2StationInformationData struct {
	Stations []V2StationInformation `json:"stations"`
}

// V2StationInformation is one station of a v2.3 station_information.json.
type V2StationInformation struct {
	StationID string  `json:"station_id"`
	Name      string  `json:"name"`
	ShortName string  `json:"short_name,omitempty"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	Address   string  `json:"address,omitempty"`
	Capacity  int     `json:"capacity"`
}

// V3StationInformationData is the data of a v3.0 station_information.json.
type V3StationInformationData struct {
	Stations []V3StationInformation `json:"stations"`
}

// V3StationInformation is one station of a v3.0 station_information.json.
type V3StationInformation struct {
	StationID string          `json:"station_id"`
	Name      []LocalizedText `json:"name"`
	ShortName []LocalizedText `json:"short_name,omitempty"`
	Lat       float64         `json:"lat"`
	Lon       float64         `json:"lon"`
	Address   string          `json:"address,omitempty"`
	Capacity  int             `json:"capacity"`
}

// V2StationStatusData is the data of a v2.3 station_status.json.
type V2StationStatusData struct {
	Stations []V2StationStatus `json:"stations"`
}

// V2StationStatus is one station of a v2.3 station_status.json.
type V2StationStatus struct {
	StationID         string `json:"station_id"`
	NumBikesAvailable int    `json:"num_bikes_available"`
	NumBikesDisabled  int    `json:"num_bikes_disabled"`
	NumDocksAvailable int    `json:"num_docks_available"`
	NumDocksDisabled  int    `json:"num_docks_disabled"`
	IsInstalled       bool   `json:"is_installed"`
	IsRenting         bool   `json:"is_renting"`
	IsReturning       bool   `json:"is_returning"`
	LastReported      int64  `json:"last_reported"`
}

// V3StationStatusData is the data of a v3.0 station_status.json.
type V3StationStatusData struct {
	Stations []V3StationStatus `json:"stations"`
}

// V3StationStatus is one station of a v3.0 station_status.json.
type V3StationStatus struct {
	StationID            string    `json:"station_id"`
	NumVehiclesAvailable int       `json:"num_vehicles_available"`
	NumVehiclesDisabled  int       `json:"num_vehicles_disabled"`
	NumDocksAvailable    int       `json:"num_docks_available"`
	NumDocksDisabled     int       `json:"num_docks_disabled"`
	IsInstalled          bool      `json:"is_installed"`
	IsRenting            bool      `json:"is_renting"`
	IsReturning          bool      `json:"is_returning"`
	LastReported         time.Time `json:"last_reported"`
}

// V2 returns s as a v2.3 station entry.
func (s StationStatus) V2() V2StationStatus {
	return V2StationStatus{
		StationID: s.StationID, NumBikesAvailable: s.NumBikesAvailable, NumBikesDisabled: s.NumBikesDisabled,
		NumDocksAvailable: s.NumDocksAvailable, NumDocksDisabled: s.NumDocksDisabled,
		IsInstalled: s.IsInstalled, IsRenting: s.IsRenting, IsReturning: s.IsReturning,
		LastReported: s.LastReported.Unix(),
	}
}

// V3 returns s as a v3.0 station entry, its time in loc (UTC if nil).
func (s StationStatus) V3(loc *time.Location) V3StationStatus {
	if loc == nil {
		loc = time.UTC
	}
	return V3StationStatus{
		StationID: s.StationID, NumVehiclesAvailable: s.NumBikesAvailable, NumVehiclesDisabled: s.NumBikesDisabled,
		NumDocksAvailable: s.NumDocksAvailable, NumDocksDisabled: s.NumDocksDisabled,
		IsInstalled: s.IsInstalled, IsRenting: s.IsRenting, IsReturning: s.IsReturning,
		LastReported: s.LastReported.In(loc),
	}
}
