package tweets

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

// The resume point follows the newest tweet that left the topology, ok or
// failed, a margin early, and moves only forward; the state names the
// tweets stored within the reach before it and since.
func TestStoredMark(t *testing.T) {
	var s storedMark
	if _, ok := s.resumeState(); ok {
		t.Fatal("a resume point before any tweet left")
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	msg := func(d time.Duration) *stages.Message[twitter.Tweet] {
		return &stages.Message[twitter.Tweet]{Data: twitter.Tweet{ID: fmt.Sprint(int64(d / time.Second)), ReceivedAt: t0.Add(d)}}
	}
	s.Ack([]*stages.Message[twitter.Tweet]{msg(time.Second), msg(3 * time.Second)}, []*stages.Message[twitter.Tweet]{msg(4 * time.Second)})
	st, ok := s.resumeState()
	if !ok || !st.LastStored.Equal(t0.Add(4*time.Second-resumeMargin)) {
		t.Fatalf("resume point %v, %v; want the newest (failed ones too) minus the margin", st.LastStored, ok)
	}
	if !slices.Equal(st.StoredIDs, []string{"1", "3", "4"}) {
		t.Fatalf("stored ids %v, want 1 3 4", st.StoredIDs)
	}
	if _, ok := s.resumeState(); ok {
		t.Fatal("an unchanged mark saved again")
	}
	s.Ack([]*stages.Message[twitter.Tweet]{msg(2 * time.Second)}, nil) // late, older
	if _, ok := s.resumeState(); ok {
		t.Fatal("an older tweet moved the mark back")
	}
	// Much later: the ids older than the reach before the new point go.
	s.Ack([]*stages.Message[twitter.Tweet]{msg(2 * time.Minute)}, nil)
	st, _ = s.resumeState()
	if !slices.Equal(st.StoredIDs, []string{"120"}) {
		t.Fatalf("stored ids %v, want only 120", st.StoredIDs)
	}
}
