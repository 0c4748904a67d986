package gbfstest

import (
	"time"

	"github.com/causeway-go/causeway/gbfs"
)

// The simulated system's identity.
const (
	systemID = "causeway-fake"
	timezone = "America/Toronto"
)

var feedNames = []string{gbfs.FeedSystemInformation, gbfs.FeedStationInformation, gbfs.FeedStationStatus}

// discovery is gbfs.json, its feed URLs under base.
func (s *Server) discovery(base string) any {
	links := make([]gbfs.FeedLink, len(feedNames))
	for i, n := range feedNames {
		links[i] = gbfs.FeedLink{Name: n, URL: base + "/" + n + ".json"}
	}
	if s.cfg.Version == gbfs.V30 {
		return gbfs.V3Document[gbfs.V3Discovery]{
			LastUpdated: s.cfg.Start.In(s.loc), TTL: s.ttl, Version: gbfs.V30,
			Data: gbfs.V3Discovery{Feeds: links},
		}
	}
	return gbfs.V2Document[gbfs.V2Discovery]{
		LastUpdated: s.cfg.Start.Unix(), TTL: s.ttl, Version: gbfs.V23,
		Data: gbfs.V2Discovery{"en": {Feeds: links}, "fr": {Feeds: links}},
	}
}

func (s *Server) systemInformation() any {
	if s.cfg.Version == gbfs.V30 {
		return gbfs.V3Document[gbfs.V3SystemInformation]{
			LastUpdated: s.cfg.Start.In(s.loc), TTL: s.ttl, Version: gbfs.V30,
			Data: gbfs.V3SystemInformation{
				SystemID:  systemID,
				Languages: []string{"en", "fr"},
				Name: []gbfs.LocalizedText{
					{Text: "Causeway Bikes (simulated)", Language: "en"},
					{Text: "Vélos Causeway (simulé)", Language: "fr"},
				},
				OpeningHours:     "24/7",
				FeedContactEmail: "gbfs@example.com",
				Timezone:         timezone,
			},
		}
	}
	return gbfs.V2Document[gbfs.V2SystemInformation]{
		LastUpdated: s.cfg.Start.Unix(), TTL: s.ttl, Version: gbfs.V23,
		Data: gbfs.V2SystemInformation{
			SystemID: systemID, Language: "en", Name: "Causeway Bikes (simulated)", Timezone: timezone,
		},
	}
}

func (s *Server) stationInformation() any {
	if s.cfg.Version == gbfs.V30 {
		stations := make([]gbfs.V3StationInformation, len(s.sim.stations))
		for i, st := range s.sim.stations {
			in := st.info
			stations[i] = gbfs.V3StationInformation{
				StationID: in.StationID,
				Name:      []gbfs.LocalizedText{{Text: in.Name, Language: "en"}, {Text: st.nameFR, Language: "fr"}},
				ShortName: []gbfs.LocalizedText{{Text: in.ShortName, Language: "en"}},
				Lat:       in.Lat, Lon: in.Lon, Address: in.Address, Capacity: in.Capacity,
			}
		}
		return gbfs.V3Document[gbfs.V3StationInformationData]{
			LastUpdated: s.cfg.Start.In(s.loc), TTL: s.ttl, Version: gbfs.V30,
			Data: gbfs.V3StationInformationData{Stations: stations},
		}
	}
	stations := make([]gbfs.V2StationInformation, len(s.sim.stations))
	for i, st := range s.sim.stations {
		in := st.info
		stations[i] = gbfs.V2StationInformation{
			StationID: in.StationID, Name: in.Name, ShortName: in.ShortName,
			Lat: in.Lat, Lon: in.Lon, Address: in.Address, Capacity: in.Capacity,
		}
	}
	return gbfs.V2Document[gbfs.V2StationInformationData]{
		LastUpdated: s.cfg.Start.Unix(), TTL: s.ttl, Version: gbfs.V23,
		Data: gbfs.V2StationInformationData{Stations: stations},
	}
}

func (s *Server) stationStatus(pub time.Time, recs []gbfs.StationStatus) any {
	if s.cfg.Version == gbfs.V30 {
		stations := make([]gbfs.V3StationStatus, len(recs))
		for i, r := range recs {
			stations[i] = r.V3(s.loc)
		}
		return gbfs.V3Document[gbfs.V3StationStatusData]{
			LastUpdated: pub.In(s.loc), TTL: s.ttl, Version: gbfs.V30,
			Data: gbfs.V3StationStatusData{Stations: stations},
		}
	}
	stations := make([]gbfs.V2StationStatus, len(recs))
	for i, r := range recs {
		stations[i] = r.V2()
	}
	return gbfs.V2Document[gbfs.V2StationStatusData]{
		LastUpdated: pub.Unix(), TTL: s.ttl, Version: gbfs.V23,
		Data: gbfs.V2StationStatusData{Stations: stations},
	}
}
