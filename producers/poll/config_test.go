package poll_test

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway-go/causeway/producers/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	split := func([]byte) ([]int, error) { return nil, nil }
	if err := (poll.Config[int]{Feeds: []poll.Feed[int]{{URL: "https://example.com/a.json", Split: split}}}).Validate(); err != nil {
		t.Errorf("zero values must take defaults, got %v", err)
	}
	err := poll.Config[int]{
		Feeds: []poll.Feed[int]{
			{URL: "ftp://example.com/a", Split: split},
			{URL: "https://example.com/b", Name: "b", Interval: -time.Second, MinInterval: time.Minute, MaxInterval: time.Second},
			{URL: "https://example.com/c", Name: "b", Split: split},
		},
		Jitter:        1.5,
		Timeout:       -1,
		ServerBackoff: poll.Backoff{Initial: time.Minute, Max: time.Second},
	}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`poll: Config.Feeds[0].URL must be http://host/… or https://host/…, got "ftp://example.com/a"`,
		"Config.Feeds[1].Split is required, got nil",
		"Config.Feeds[1].Interval must be > 0, got -1s",
		"Config.Feeds[1].MinInterval and MaxInterval need 0 < MinInterval <= MaxInterval, got 1m0s and 1s",
		`Config.Feeds[2].Name "b" is also Feeds[1]'s name`,
		"Config.Jitter must be at most 1, got 1.5",
		"Config.Timeout must be > 0, got -1ns",
		"Config.ServerBackoff needs 0 <= Initial <= Max, got 1m0s and 1s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := (poll.Config[int]{}).Validate(); err == nil || !strings.Contains(err.Error(), "Config.Feeds needs at least one feed") {
		t.Errorf("no feeds: %v", err)
	}
	if _, err := poll.New(poll.Config[int]{}); err == nil {
		t.Error("New accepted an invalid config")
	}
}
