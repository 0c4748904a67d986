package dashboard_test

import (
	"context"
	"net/http"

	"github.com/causeway-go/causeway/dashboard"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// A program mounts the page for its topologies in one line, next to its
// other handlers.
func ExampleHandler() {
	top, err := topology.New(topology.Spec[string]{
		Name:     "words",
		Producer: topology.ProducerSpec[string]{Producer: topologytest.NewProducer[string]()},
		Processors: topology.ProcessorSpec[string]{Handle: func(context.Context, *stages.Message[string]) error {
			return nil
		}},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/causeway/", dashboard.Handler(top))
	// http.ListenAndServe("127.0.0.1:8080", mux) serves the page at
	// http://127.0.0.1:8080/causeway/ and its JSON at /causeway/api/topologies.
}

// Errors shows a topology's latest errors beside it, and a Panel adds a
// section of the program's own.
func ExampleNew() {
	errs := &dashboard.Errors{}
	top, err := topology.New(topology.Spec[string]{
		Name:     "words",
		Producer: topology.ProducerSpec[string]{Producer: topologytest.NewProducer[string]()},
		Processors: topology.ProcessorSpec[string]{Handle: func(context.Context, *stages.Message[string]) error {
			return nil
		}},
		HandleFailed: dashboard.HandleFailed[string](errs, nil),
		Hooks:        errs.Hooks(stages.Hooks{}),
	})
	if err != nil {
		panic(err)
	}
	d := dashboard.New(dashboard.Options{Panels: []dashboard.Panel{{
		Name: "source", Title: "source connection",
		Data: func() any { return map[string]any{"state": "connected", "reconnects": 0} },
	}}}, dashboard.WithErrors(top, errs))
	defer d.Close()
	http.Handle("/causeway/", d)
}

// A panel of kind KindStationMap is drawn as a map of stations from their
// positions (SVG, no map tiles), each coloured by bikes available over
// capacity; a panel without a kind beside it is a table.
func ExampleKindStationMap() {
	type station struct {
		StationID string  `json:"station_id"`
		Name      string  `json:"name"`
		Lat       float64 `json:"lat"`
		Lon       float64 `json:"lon"`
		Capacity  int     `json:"capacity"`
		Bikes     int     `json:"bikes"`
		Docks     int     `json:"docks"`
		Installed bool    `json:"installed"`
		Renting   bool    `json:"renting"`
	}
	stations := func() any {
		return []station{
			{"1", "Quay St", 45.50, -73.56, 20, 5, 15, true, true},
			{"2", "Mill Rd", 45.52, -73.58, 10, 0, 10, true, true},
		}
	}
	d := dashboard.New(dashboard.Options{Panels: []dashboard.Panel{
		{Name: "map", Title: "Stations", Kind: dashboard.KindStationMap, Data: stations},
		{Name: "list", Title: "Stations as a table", Data: stations},
	}})
	defer d.Close()
	http.Handle("/bikes/", d)
}
