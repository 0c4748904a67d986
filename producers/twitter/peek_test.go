package twitter

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
)

// Every recorded line the quick look takes is a tweet whose full decode
// has the same id; the quick look takes all of them but none with an
// escaped id.
func TestPeekAgreesWithDecode(t *testing.T) {
	var l Line
	for i, raw := range recordedLines(t) {
		id, ok := peekTweet(raw)
		if err := Decode(raw, &l); err != nil {
			if ok {
				t.Errorf("line %d: peek took a line Decode rejects: %v", i, err)
			}
			continue
		}
		if !ok {
			t.Errorf("line %d: peek refused a tweet Decode takes: %.120q", i, raw)
			continue
		}
		if l.Kind != KindTweet || l.Tweet.ID != id {
			t.Errorf("line %d: peek says id %q, Decode says %v %q", i, id, l.Kind, l.Tweet.ID)
		}
	}
}

func TestPeekRefusesWhatItCannotPlace(t *testing.T) {
	for _, line := range []string{
		`{"errors":[{"title":"operational-disconnect"}]}`,
		`{"data":{"text":"no id"}}`,
		`{"data":{"id":"1","text":"cut sh`,
		`{"data":{"id":"1\u0032"}}`,
		`{"data":{"id":"1"}}trailing`,
		`{"data":{"id":"1"},"data":{"id":"2"}}`,
		`{"data":{"id":"1","id":"2"}}`,
		`{"data":{"id":1}}`,
		`["data"]`,
		``,
		`{"matching_rules":[{"id":"9","tag":"x"}],"data":{"entities":{"mentions":[{"id":"7"}]}}}`,
	} {
		if id, ok := peekTweet([]byte(line)); ok {
			t.Errorf("peek took %q as tweet %q", line, id)
		}
	}
	id, ok := peekTweet([]byte(` { "matching_rules" : [{"id":"9","tag":"a\"}"}] , "data" : {"entities":{"mentions":[{"id":"7"}]},"text":"a\\","id" : "42"} } `))
	if !ok || id != "42" {
		t.Errorf("peek = %q, %v; want 42", id, ok)
	}
}

// With DeferDecode the stream emits tweets undecoded; Decode in a processor
// then gives the tweet the stream would have decoded, and a line only the
// full decode finds malformed fails with its offset and is counted.
func TestDeferDecode(t *testing.T) {
	lines := recordedLines(t)[:300]
	bad := []byte(`{"data":{"id":"77","created_at":12}}`) // the wrong type for created_at: only Decode sees it
	lines = append(lines[:150:150], append([][]byte{bad}, lines[150:]...)...)
	srv := newServer(t, twittertest.Config{H2C: true, Record: true, Faults: twittertest.Faults{MalformedEvery: 50}}, lines)
	s := newStream(srv, newProbe(), Config{Sample: true, DeferDecode: true})
	_, buf := runBare(t, s)
	<-srv.Done()
	waitUntil(t, "every line read", func() bool { return s.Stats().Received >= 301+6 })
	buf.Ask(0, 301)
	msgs, err := buf.Take(context.Background(), 0, nil)
	if err != nil || len(msgs) != 301 {
		t.Fatalf("took %d messages: %v", len(msgs), err)
	}
	var l Line
	for i := range msgs {
		tw := &msgs[i].Data
		if !tw.Deferred() || tw.Text != "" || tw.ID == "" || tw.ReceivedAt.IsZero() {
			t.Fatalf("message %d: not an undecoded tweet: %+v", i, tw)
		}
		raw, off, at := tw.Raw, tw.Offset, tw.ReceivedAt
		err := s.Decode(tw)
		if bytes.Equal(raw, bad) {
			var late *LateMalformedError
			if !errors.As(err, &late) || late.ID != "77" || late.Offset != off || !late.Permanent() {
				t.Fatalf("the bad line: %v, want a *LateMalformedError at offset %d", err, off)
			}
			continue
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if err := Decode(raw, &l); err != nil {
			t.Fatal(err)
		}
		want := l.Tweet
		want.ReceivedAt, want.Offset = at, off
		if tw.Deferred() || !reflect.DeepEqual(*tw, want) {
			t.Fatalf("message %d decoded late:\n got %+v\nwant %+v", i, *tw, want)
		}
		if err := s.Decode(tw); err != nil || !reflect.DeepEqual(*tw, want) {
			t.Fatalf("a second Decode changed the tweet: %v", err)
		}
	}
	st := s.Stats()
	// The injected cut lines do not close: the stream counts them itself.
	if st.Emitted != 301 || st.Malformed != 6 || st.MalformedLate != 1 || st.Received != 307 {
		t.Fatalf("emitted %d, malformed %d, late %d, received %d; want 301, 6, 1, 307", st.Emitted, st.Malformed, st.MalformedLate, st.Received)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
}
