package main

import (
	"strings"
	"testing"

	"github.com/causeway-go/causeway/stages"
)

// /readyz names each sink that is held back or down; a healthy pipeline
// is ready.
func TestReadinessNamesEverySinkInTrouble(t *testing.T) {
	healthy := stages.Stats{Batchers: []stages.BatcherStats{{Name: "kafka"}, {Name: "postgres", Spill: &stages.SpillStats{}}}}
	if p := readiness(healthy, nil); len(p) != 0 {
		t.Fatalf("healthy pipeline not ready: %v", p)
	}
	sick := stages.Stats{Batchers: []stages.BatcherStats{
		{Name: "kafka", Blocked: true},
		{Name: "postgres", Spill: &stages.SpillStats{SinkDown: true, Records: 1200}},
		{Name: "archive", Spill: &stages.SpillStats{Full: true, Records: 9, Bytes: 1 << 30}},
	}}
	p := strings.Join(readiness(sick, nil), "\n")
	for _, want := range []string{"sink kafka: failing", "sink postgres: down, 1200 tweets held", "sink archive: spill full"} {
		if !strings.Contains(p, want) {
			t.Errorf("readiness %q lacks %q", p, want)
		}
	}
}
