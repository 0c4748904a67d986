package twitter

import "time"

// Tweet is one tweet message from an X API v2 stream, decoded once. Raw
// keeps the exact line as the server sent it, so sinks can store the tweet
// losslessly; the other fields are what pipelines route and index by.
type Tweet struct {
	ID             string // decimal string, as the API sends it
	Text           string
	AuthorID       string
	ConversationID string
	CreatedAt      time.Time
	Lang           string
	// Hashtags, Mentions (usernames) and URLs (expanded) come from the
	// tweet's entities.
	Hashtags         []string
	Mentions         []string
	URLs             []string
	ReferencedTweets []ReferencedTweet
	EditHistoryIDs   []string
	// MatchingRules are the filtered-stream rules the tweet matched.
	MatchingRules []MatchingRule
	// Users are the expanded users of includes.users (the author first when
	// the author_id expansion was requested).
	Users []User
	// ReceivedAt is when the stream read the tweet's line (local clock):
	// what a program stores as its resume point (Config.ResumeFrom,
	// StateFile).
	ReceivedAt time.Time
	// Offset is the line's byte offset in its connection's stream.
	Offset int64
	// Raw is the stream line, without its CRLF. Treat it as read-only: the
	// decoder gives the tweet one copy of its line, and the string fields
	// without escapes share its memory.
	Raw []byte

	deferred bool // emitted undecoded (Config.DeferDecode): Stream.Decode fills the rest
}

// ReferencedTweet is a tweet this one replies to, quotes or retweets.
type ReferencedTweet struct {
	Type string // "replied_to", "quoted" or "retweeted"
	ID   string
}

// MatchingRule is a filtered-stream rule a tweet matched.
type MatchingRule struct {
	ID  string
	Tag string
}

// User is an expanded user object.
type User struct {
	ID       string
	Name     string
	Username string
}

// RuleTags returns the tags of the rules the tweet matched.
func (t *Tweet) RuleTags() []string {
	tags := make([]string, 0, len(t.MatchingRules))
	for _, r := range t.MatchingRules {
		tags = append(tags, r.Tag)
	}
	return tags
}
