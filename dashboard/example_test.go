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
