package gbfs_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/causeway-go/causeway/gbfs"
)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// Both versions of the same station_status normalise to the same records.
func TestParseStationStatusBothVersions(t *testing.T) {
	want := []gbfs.StationStatus{
		{StationID: "A1", LastReported: utc("2025-12-31T23:59:50Z"), NumBikesAvailable: 4, NumBikesDisabled: 1,
			NumDocksAvailable: 10, IsInstalled: true, IsRenting: true, IsReturning: true},
		{StationID: "A2", LastReported: utc("2025-12-31T23:50:00Z"), NumDocksAvailable: 15, IsInstalled: true},
		{StationID: "3", LastReported: utc("2025-12-31T23:59:59.5Z"), NumBikesAvailable: 2, NumDocksAvailable: 8,
			IsInstalled: true, IsRenting: true},
	}
	for _, c := range []struct {
		file    string
		version string
		major   int
	}{{"station_status_v2.3.json", "2.3", 2}, {"station_status_v3.0.json", "3.0", 3}} {
		t.Run(c.file, func(t *testing.T) {
			f, err := gbfs.ParseStationStatus(read(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if f.Version != c.version || f.Major() != c.major || !f.LastUpdated.Equal(utc("2026-01-01T00:00:00Z")) || f.TTL != 10*time.Second {
				t.Errorf("header = %+v", f.Header)
			}
			if !reflect.DeepEqual(f.Stations, want) {
				t.Errorf("stations:\n got %+v\nwant %+v", f.Stations, want)
			}
			for _, s := range f.Stations {
				if err := s.Validate(); err != nil {
					t.Errorf("Validate(%s) = %v", s.StationID, err)
				}
				if s.LastReported.Location() != time.UTC {
					t.Errorf("%s: last_reported in %v, want UTC", s.StationID, s.LastReported.Location())
				}
			}
		})
	}
}

// What this package writes, it reads back as it was, in both versions.
func TestStationStatusRoundTrip(t *testing.T) {
	recs := []gbfs.StationStatus{
		{StationID: "x", LastReported: utc("2026-03-01T12:00:00Z"), NumBikesAvailable: 3, NumBikesDisabled: 2,
			NumDocksAvailable: 7, NumDocksDisabled: 1, IsInstalled: true, IsRenting: true},
		{StationID: "y", LastReported: utc("2026-03-01T11:00:01Z"), IsReturning: true},
	}
	v2 := gbfs.V2Document[gbfs.V2StationStatusData]{LastUpdated: 1772366400, TTL: 5, Version: gbfs.V23}
	v3 := gbfs.V3Document[gbfs.V3StationStatusData]{LastUpdated: utc("2026-03-01T12:00:00Z").In(time.FixedZone("X", 3600)), TTL: 5, Version: gbfs.V30}
	for _, r := range recs {
		v2.Data.Stations = append(v2.Data.Stations, r.V2())
		v3.Data.Stations = append(v3.Data.Stations, r.V3(time.FixedZone("EST", -5*3600)))
	}
	for name, doc := range map[string]any{"v2.3": v2, "v3.0": v3} {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := gbfs.SplitStationStatus(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, recs) {
			t.Errorf("%s: got %+v, want %+v", name, got, recs)
		}
		lu, ttl, err := gbfs.Freshness(b)
		if err != nil || !lu.Equal(utc("2026-03-01T12:00:00Z")) || ttl != 5*time.Second {
			t.Errorf("%s: Freshness = %v, %v, %v", name, lu, ttl, err)
		}
		if name == "v3.0" && !strings.Contains(string(b), `"last_reported":"2026-03-01T07:00:00-05:00"`) {
			t.Errorf("v3.0 times are not RFC 3339 with an offset: %s", b)
		}
		if name == "v2.3" && !strings.Contains(string(b), `"last_reported":1772366400`) {
			t.Errorf("v2.3 times are not POSIX seconds: %s", b)
		}
	}
}

func TestParseStationInformation(t *testing.T) {
	for _, c := range []struct {
		file, lang string
		want       []gbfs.StationInformation
	}{
		{"station_information_v2.3.json", "en", []gbfs.StationInformation{
			{StationID: "A1", Name: "Market St & 3rd Ave", ShortName: "101", Lat: 45.5, Lon: -73.56, Address: "1 Market Street", Capacity: 15},
			{StationID: "A2", Name: "Pier 4", Lat: 45.51, Lon: -73.55, Capacity: 15},
		}},
		{"station_information_v3.0.json", "en", []gbfs.StationInformation{
			{StationID: "A1", Name: "Market St & 3rd Ave", ShortName: "101", Lat: 45.5, Lon: -73.56, Address: "1 Market Street", Capacity: 15},
			{StationID: "A2", Name: "Quai 4", Lat: 45.51, Lon: -73.55, Capacity: 15}, // no English name: the first
		}},
		{"station_information_v3.0.json", "fr", []gbfs.StationInformation{
			{StationID: "A1", Name: "rue du Marché / 3e Avenue", ShortName: "101", Lat: 45.5, Lon: -73.56, Address: "1 Market Street", Capacity: 15},
			{StationID: "A2", Name: "Quai 4", Lat: 45.51, Lon: -73.55, Capacity: 15},
		}},
	} {
		got, err := gbfs.SplitStationInformation(c.lang)(read(t, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s (%s):\n got %+v\nwant %+v", c.file, c.lang, got, c.want)
		}
		for _, s := range got {
			if err := s.Validate(); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestParseDiscovery(t *testing.T) {
	d, err := gbfs.ParseDiscovery(read(t, "gbfs_v2.3.json"), "fr")
	if err != nil {
		t.Fatal(err)
	}
	if d.Language != "fr" || !reflect.DeepEqual(d.Languages, []string{"en", "fr"}) ||
		d.URL(gbfs.FeedStationStatus) != "https://example.com/fr/station_status.json" || d.URL("nope") != "" {
		t.Errorf("v2.3 = %+v", d)
	}
	d, err = gbfs.ParseDiscovery(read(t, "gbfs_v2.3.json"), "de") // not there: the first
	if err != nil || d.Language != "en" || d.URL(gbfs.FeedSystemInformation) != "https://example.com/en/system_information.json" {
		t.Errorf("v2.3, de = %+v, %v", d, err)
	}
	d, err = gbfs.ParseDiscovery(read(t, "gbfs_v3.0.json"), "")
	if err != nil || d.Major() != 3 || d.URL(gbfs.FeedStationStatus) != "https://example.com/station_status.json" {
		t.Errorf("v3.0 = %+v, %v", d, err)
	}
}

func TestParseSystemInformation(t *testing.T) {
	h, si, err := gbfs.ParseSystemInformation(read(t, "system_information_v3.0.json"), "fr")
	if err != nil {
		t.Fatal(err)
	}
	want := gbfs.SystemInformation{SystemID: "demo", Name: "Vélos démo", Timezone: "America/Toronto", Languages: []string{"en", "fr"}}
	if !reflect.DeepEqual(si, want) || h.TTL != time.Hour {
		t.Errorf("got %+v, %+v", h, si)
	}
}

// Broken documents are errors that say where; broken stations are returned
// and Validate says what is wrong.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		offset    int64 // -1: no offset expected
	}{
		{"truncated", `{"last_updated": 1, "data": {"stations": [{"station_id": "a"`, 60},
		{"not JSON", `<html>502 Bad Gateway</html>`, 1},
		{"stations not a list", `{"data": {"stations": {"a": 1}}}`, -1},
		{"bad time", `{"last_updated": "yesterday", "data": {}}`, -1},
		{"bad boolean", `{"data": {"stations": [{"station_id": "a", "is_renting": "maybe"}]}}`, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := gbfs.ParseStationStatus([]byte(c.doc))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "gbfs: station_status") {
				t.Errorf("error %q does not name the feed", err)
			}
			var syn *json.SyntaxError
			if c.offset >= 0 && (!errors.As(err, &syn) || syn.Offset != c.offset) {
				t.Errorf("error %v: want a *json.SyntaxError at offset %d", err, c.offset)
			}
		})
	}
	f, err := gbfs.ParseStationStatus([]byte(`{"data": {"stations": [{"num_bikes_available": -1}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	verr := f.Stations[0].Validate()
	if verr == nil || !strings.Contains(verr.Error(), "station_id is empty") || !strings.Contains(verr.Error(), "last_reported is missing") ||
		!strings.Contains(verr.Error(), "num_bikes_available must be >= 0, got -1") {
		t.Errorf("Validate = %v", verr)
	}
}

// FuzzParseStationStatus: no input panics, and what parses can be written
// as v2.3 and read back the same (to the second).
func FuzzParseStationStatus(f *testing.F) {
	for _, name := range []string{"station_status_v2.3.json", "station_status_v3.0.json", "station_information_v3.0.json", "gbfs_v2.3.json"} {
		f.Add(read(f, name))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		feed, err := gbfs.ParseStationStatus(doc)
		if err != nil {
			return
		}
		var v2 gbfs.V2Document[gbfs.V2StationStatusData]
		for _, s := range feed.Stations {
			s.LastReported = s.LastReported.Truncate(time.Second)
			if s.LastReported.Unix() < 0 {
				return
			}
			v2.Data.Stations = append(v2.Data.Stations, s.V2())
		}
		b, err := json.Marshal(v2)
		if err != nil {
			t.Fatal(err)
		}
		back, err := gbfs.SplitStationStatus(b)
		if err != nil {
			t.Fatalf("re-reading %s: %v", b, err)
		}
		for i, s := range back {
			o := feed.Stations[i]
			if s.StationID != o.StationID || !s.SameState(o) || s.LastReported.Unix() != o.LastReported.Unix() {
				t.Fatalf("station %d: %+v became %+v", i, o, s)
			}
		}
	})
}
