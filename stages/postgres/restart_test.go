package postgres_test

import (
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// TestPostgresRestartMidStream restarts the server (a private cluster, so
// other tests are not disturbed) while a rate-limited stream of batches
// flows: batches caught by the restart are retried, and in the end every
// post is in the table exactly once and every message was acknowledged as
// successful.
func TestPostgresRestartMidStream(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	pool, _ := pgtest.SchemaOn(t, cluster.URL)
	var retries atomic.Int64
	cfg := postsConfig(pool)
	cfg.Logger = slog.New(countingHandler{retries: &retries})
	cfg.Retry = postgres.Retry{Attempts: 100, Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	s, err := postgres.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	p := topologytest.NewProducer[post]()
	top, err := topology.New(topology.Spec[post]{
		Producer: topology.ProducerSpec[post]{Producer: p, Keep: stages.Block,
			RateLimit: stages.RateLimit{Messages: 250, Interval: 50 * time.Millisecond}},
		Processors: topology.ProcessorSpec[post]{Concurrency: 2},
		Batchers: map[string]topology.BatcherSpec[post]{
			"postgres": {BatchSize: 100, BatchTimeout: 20 * time.Millisecond, Concurrency: 2, Handle: s.HandleBatch},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := topologytest.Start(t, top)

	const chunks, size = 12, 500
	pending := make([]*topologytest.Pending[post], chunks)
	for c := range chunks {
		pending[c] = p.Push(postRange(c*size, size)...)
	}
	pending[1].Await(t, 30*time.Second)
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	ok := 0
	for c := range chunks {
		acks := pending[c].Await(t, 60*time.Second)
		for _, m := range acks.Failed {
			t.Errorf("post %d failed: %v", m.Data.ID, m.Err())
		}
		ok += len(acks.Successful)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ok != chunks*size {
		t.Fatalf("%d posts acknowledged as successful, want %d", ok, chunks*size)
	}
	if got := ids(t, pool, "posts"); !slices.Equal(got, idRange(0, chunks*size)) {
		t.Fatalf("table holds %d ids, want exactly %d distinct", len(got), chunks*size)
	}
	if st := top.Stats(); st.Acked != chunks*size || st.Failed != 0 {
		t.Fatalf("stats: acked %d failed %d", st.Acked, st.Failed)
	}
	if retries.Load() == 0 {
		t.Fatal("no retry logged: the restart did not hit the stream")
	}
	t.Logf("%d retries across the restart", retries.Load())
}
