package tweets

import (
	"testing"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

// The resume point follows the newest tweet that left the topology, ok or
// failed, a margin early, and moves only forward.
func TestStoredMark(t *testing.T) {
	var s storedMark
	if _, ok := s.resumePoint(); ok {
		t.Fatal("a resume point before any tweet left")
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	msg := func(d time.Duration) *stages.Message[twitter.Tweet] {
		return &stages.Message[twitter.Tweet]{Data: twitter.Tweet{ReceivedAt: t0.Add(d)}}
	}
	s.Ack([]*stages.Message[twitter.Tweet]{msg(time.Second), msg(3 * time.Second)}, []*stages.Message[twitter.Tweet]{msg(4 * time.Second)})
	at, ok := s.resumePoint()
	if !ok || !at.Equal(t0.Add(4*time.Second-resumeMargin)) {
		t.Fatalf("resume point %v, %v; want the newest (failed ones too) minus the margin", at, ok)
	}
	if _, ok := s.resumePoint(); ok {
		t.Fatal("an unchanged mark saved again")
	}
	s.Ack([]*stages.Message[twitter.Tweet]{msg(2 * time.Second)}, nil) // late, older
	if _, ok := s.resumePoint(); ok {
		t.Fatal("an older tweet moved the mark back")
	}
}
