// Command gen writes the recorded X API v2 stream lines in testdata/: one
// filtered-stream message per line ({"data":…,"includes":…,"matching_rules":…}),
// CRLF-terminated as the stream sends them.
//
// Run it from the repository root to regrow the files:
//
//	go run ./testdata/gen            # writes testdata/tweets.jsonl and testdata/edge.jsonl
//	go run ./testdata/gen -n 20000   # more tweets (same seed: the first ones do not change)
//
// The output is deterministic for a given -seed and -n. Tweets vary in
// language and script (Latin, CJK, Arabic and Persian, Hebrew, Devanagari,
// Cyrillic, Thai), length, hashtags, mentions, URLs, replies, quotes,
// retweets and edits. About one line in ten is written with every non-ASCII
// character \u-escaped, the way JSON encoders with "ensure ASCII" record
// streams, so decoders meet both forms.
//
// edge.jsonl holds a few documented edge cases, one per line; see
// testdata/README.md. Three of them (NUL in text, lone surrogates) are valid
// JSON that PostgreSQL's jsonb rejects on purpose.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func main() {
	n := flag.Int("n", 5000, "number of regular tweets to write to tweets.jsonl")
	seed := flag.Uint64("seed", 20250301, "random seed")
	dir := flag.String("dir", "testdata", "output directory")
	gap := flag.Duration("gap", 0, "mean event-time gap between two tweets' created_at (e.g. 2s spreads 5,000 tweets over ~3 hours, across many windows); 0: 5-44ms, as recorded")
	flag.Parse()
	g := newGen(*seed)
	g.gap = *gap
	if err := g.writeFile(filepath.Join(*dir, "tweets.jsonl"), func(w *bufio.Writer) error {
		for range *n {
			if err := writeLine(w, g.tweet()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		log.Fatal(err)
	}
	if err := g.writeFile(filepath.Join(*dir, "edge.jsonl"), func(w *bufio.Writer) error {
		for _, line := range g.edgeCases() {
			if err := writeLine(w, line); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		log.Fatal(err)
	}
}

func writeLine(w *bufio.Writer, line []byte) error {
	if _, err := w.Write(line); err != nil {
		return err
	}
	_, err := w.WriteString("\r\n")
	return err
}

func (g *gen) writeFile(path string, fill func(*bufio.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := fill(w); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// twitterEpoch is the snowflake epoch, in Unix milliseconds.
const twitterEpoch = 1288834974657

type user struct {
	id, name, username, created, lang string
	verified                          bool
	followers, following, tweets      int
	listed                            int
}

type published struct {
	id, authorID, text string
}

type gen struct {
	r      *rand.Rand
	now    time.Time // created_at of the last tweet
	seq    int64
	users  []user
	recent []published   // tweets that replies, quotes and retweets refer to
	edits  int64         // sequence for ids of earlier versions of edited tweets
	gap    time.Duration // mean created_at gap; 0: 5-44ms
}

func newGen(seed uint64) *gen {
	g := &gen{
		r:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	seen := map[string]bool{}
	for len(g.users) < 900 {
		u := g.newUser()
		if seen[strings.ToLower(u.username)] {
			continue
		}
		seen[strings.ToLower(u.username)] = true
		g.users = append(g.users, u)
	}
	return g
}

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// snowflake returns an id for a tweet created at t.
func (g *gen) snowflake(t time.Time, worker int64) string {
	g.seq++
	ms := t.UnixMilli() - twitterEpoch
	return strconv.FormatInt(ms<<22|worker<<12|g.seq&0xfff, 10)
}

func (g *gen) newUser() user {
	l := g.pickLang()
	syll := []string{"ka", "ri", "mo", "to", "lu", "na", "se", "vi", "do", "ha", "jo", "ne", "zu", "pe", "ya", "el", "an", "or"}
	var b strings.Builder
	for range 2 + g.r.IntN(3) {
		b.WriteString(g.pick(syll))
	}
	if g.chance(0.3) {
		b.WriteString("_")
		b.WriteString(g.pick([]string{"news", "dev", "art", "fc", "jp", "official", "daily", "bot", "music"}))
	}
	if g.chance(0.5) {
		b.WriteString(strconv.Itoa(g.r.IntN(2000)))
	}
	username := b.String()
	if len(username) > 15 {
		username = username[:15]
	}
	created := time.Date(2007+g.r.IntN(18), time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.IntN(60), 0, time.UTC)
	var id string
	if created.Year() < 2014 {
		id = strconv.FormatInt(10_000_000+g.r.Int64N(2_500_000_000), 10)
	} else {
		id = g.snowflake(created, g.r.Int64N(1024))
	}
	name := g.pick(names[l.code])
	if g.chance(0.15) {
		name += " " + g.pick(emoji)
	}
	return user{
		id: id, name: name, username: username, lang: l.code,
		created:   created.Format("2006-01-02T15:04:05.000Z"),
		verified:  g.chance(0.05),
		followers: int(g.r.ExpFloat64() * 2000), following: g.r.IntN(3000),
		tweets: g.r.IntN(80000), listed: g.r.IntN(60),
	}
}

type lang struct {
	code   string
	weight int
	spaced bool // words are separated by spaces
}

var langs = []lang{
	{"en", 34, true}, {"ja", 14, false}, {"es", 9, true}, {"pt", 6, true},
	{"ar", 6, true}, {"ko", 4, true}, {"zh", 3, false}, {"fr", 3, true},
	{"tr", 3, true}, {"hi", 2, true}, {"ru", 2, true}, {"de", 2, true},
	{"fa", 2, true}, {"he", 2, true}, {"th", 2, false}, {"in", 2, true},
	{"und", 4, true},
}

func (g *gen) pickLang() lang {
	total := 0
	for _, l := range langs {
		total += l.weight
	}
	x := g.r.IntN(total)
	for _, l := range langs {
		if x < l.weight {
			return l
		}
		x -= l.weight
	}
	return langs[0]
}

// tweet returns one regular filtered-stream line.
func (g *gen) tweet() []byte {
	if g.gap > 0 {
		g.now = g.now.Add(g.gap/2 + time.Duration(g.r.Int64N(int64(g.gap)+1)))
	} else {
		g.now = g.now.Add(time.Duration(5+g.r.IntN(40)) * time.Millisecond)
	}
	l := g.pickLang()
	author := g.users[g.r.IntN(len(g.users))]
	id := g.snowflake(g.now, g.r.Int64N(1024))
	t := &tweetDraft{id: id, author: author, lang: l.code, created: g.now}

	kind := g.r.IntN(100)
	switch {
	case kind < 18 && len(g.recent) > 0: // reply
		parent := g.recent[g.r.IntN(len(g.recent))]
		pu := g.userByID(parent.authorID)
		t.ref = &refDraft{typ: "replied_to", p: parent}
		t.inReplyTo = parent.authorID
		t.conversation = parent.id
		t.addMention(pu)
		t.text.WriteString(" ")
	case kind < 26 && len(g.recent) > 0: // quote
		parent := g.recent[g.r.IntN(len(g.recent))]
		t.ref = &refDraft{typ: "quoted", p: parent}
	case kind < 36 && len(g.recent) > 0: // retweet
		parent := g.recent[g.r.IntN(len(g.recent))]
		pu := g.userByID(parent.authorID)
		t.ref = &refDraft{typ: "retweeted", p: parent}
		t.text.WriteString("RT ")
		t.addMention(pu)
		t.text.WriteString(": ")
		body := parent.text
		if utf8.RuneCountInString(body) > 110 {
			body = string([]rune(body)[:110]) + "…"
		}
		t.text.WriteString(body)
	}
	if t.ref == nil || t.ref.typ != "retweeted" {
		g.body(t, l)
	}
	if t.ref != nil && t.ref.typ == "quoted" {
		pu := g.userByID(t.ref.p.authorID)
		t.text.WriteString(" ")
		t.addURL(g.tco(), "https://twitter.com/"+pu.username+"/status/"+t.ref.p.id, "twitter.com/"+pu.username+"/st…")
	}
	if g.chance(0.07) {
		t.edits = 1 + g.r.IntN(3)
	}
	text := t.text.String()
	if t.ref == nil || t.ref.typ != "retweeted" {
		g.recent = append(g.recent, published{id: id, authorID: author.id, text: text})
		if len(g.recent) > 400 {
			g.recent = g.recent[1:]
		}
	}
	line := g.render(t, text, nil)
	if g.chance(0.1) {
		line = asciiEscape(line)
	}
	return line
}

func (g *gen) userByID(id string) user {
	for _, u := range g.users {
		if u.id == id {
			return u
		}
	}
	return g.users[0]
}

func (g *gen) tco() string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := []byte("https://t.co/")
	for range 10 {
		b = append(b, alnum[g.r.IntN(len(alnum))])
	}
	return string(b)
}

// body writes the tweet's own words, with hashtags, mentions, links and
// emoji sprinkled in.
func (g *gen) body(t *tweetDraft, l lang) {
	words := vocab[l.code]
	n := 4 + g.r.IntN(14)
	if g.chance(0.12) {
		n += 20 + g.r.IntN(25) // a long one
	}
	sep := " "
	if !l.spaced {
		sep = ""
	}
	for i := range n {
		if i > 0 {
			t.text.WriteString(sep)
		}
		t.text.WriteString(g.pick(words))
		switch x := g.r.IntN(100); {
		case x < 4:
			t.text.WriteString(" " + g.pick(emoji))
		case x < 6:
			t.text.WriteString(g.pick([]string{",", ".", "!", "?", "…", "!!"}))
		case x < 7 && l.spaced:
			t.text.WriteString(" &amp;")
		case x < 8:
			t.text.WriteString("\n")
		}
	}
	if g.chance(0.45) {
		for range 1 + g.r.IntN(3) {
			t.text.WriteString(" ")
			t.addHashtag(g.pick(append(hashtags[l.code], hashtags["*"]...)))
		}
	}
	if g.chance(0.2) {
		t.text.WriteString(" ")
		t.addMention(g.users[g.r.IntN(len(g.users))])
	}
	if g.chance(0.25) {
		host := g.pick([]string{"example.com", "news.example.org", "blog.example.net", "shop.example.jp", "video.example.co"})
		path := fmt.Sprintf("/%s/%d", g.pick([]string{"post", "article", "watch", "p", "2025/03"}), g.r.IntN(100000))
		t.text.WriteString(" ")
		t.addURL(g.tco(), "https://"+host+path, host+path)
	}
	if g.chance(0.2) {
		t.text.WriteString(" " + g.pick(emoji) + g.pick(emoji))
	}
}

type refDraft struct {
	typ string
	p   published
}

type entity struct {
	start, end int
	fields     []kv
}

type tweetDraft struct {
	id, lang     string
	author       user
	created      time.Time
	text         strings.Builder
	ref          *refDraft
	inReplyTo    string
	conversation string
	edits        int
	hashtags     []entity
	mentions     []entity
	mentioned    []user
	urls         []entity
}

func (t *tweetDraft) pos() int { return utf8.RuneCountInString(t.text.String()) }

func (t *tweetDraft) addHashtag(tag string) {
	s := t.pos()
	t.text.WriteString("#" + tag)
	t.hashtags = append(t.hashtags, entity{s, t.pos(), []kv{{"tag", tag}}})
}

func (t *tweetDraft) addMention(u user) {
	s := t.pos()
	t.text.WriteString("@" + u.username)
	t.mentions = append(t.mentions, entity{s, t.pos(), []kv{{"username", u.username}, {"id", u.id}}})
	for _, m := range t.mentioned {
		if m.id == u.id {
			return
		}
	}
	t.mentioned = append(t.mentioned, u)
}

func (t *tweetDraft) addURL(short, expanded, display string) {
	s := t.pos()
	t.text.WriteString(short)
	t.urls = append(t.urls, entity{s, t.pos(), []kv{{"url", short}, {"expanded_url", expanded}, {"display_url", display}}})
}

// rules are the filtered-stream rules the recording was made with.
var rules = []struct{ id, tag string }{
	{"1895512838392020993", "everything"},
	{"1895512838392020994", "japanese"},
	{"1895512838392020995", "has-links"},
	{"1895512838392020996", "hashtags"},
}

// render lays the tweet out as a stream line. extra, if set, may change the
// data object before it is written.
func (g *gen) render(t *tweetDraft, text string, extra func(data obj) obj) []byte {
	edits := []any{t.id}
	if t.edits > 0 {
		edits = edits[:0]
		for range t.edits {
			g.edits++
			edits = append(edits, g.snowflake(t.created.Add(-time.Duration(g.edits%50+1)*time.Minute), 1023))
		}
		edits = append(edits, t.id)
	}
	conv := t.conversation
	if conv == "" {
		conv = t.id
	}
	data := obj{
		{"edit_history_tweet_ids", edits},
		{"id", t.id},
		{"text", text},
		{"author_id", t.author.id},
		{"conversation_id", conv},
		{"created_at", t.created.Format("2006-01-02T15:04:05.000Z")},
		{"lang", t.lang},
		{"possibly_sensitive", g.chance(0.02)},
		{"reply_settings", g.pick([]string{"everyone", "everyone", "everyone", "following", "mentionedUsers"})},
		{"public_metrics", obj{{"retweet_count", g.r.IntN(50)}, {"reply_count", g.r.IntN(20)}, {"like_count", g.r.IntN(300)}, {"quote_count", g.r.IntN(5)}}},
	}
	if t.inReplyTo != "" {
		data = append(data, kv{"in_reply_to_user_id", t.inReplyTo})
	}
	if t.ref != nil {
		data = append(data, kv{"referenced_tweets", []any{obj{{"type", t.ref.typ}, {"id", t.ref.p.id}}}})
	}
	var ents obj
	addEnts := func(name string, es []entity) {
		if len(es) == 0 {
			return
		}
		var arr []any
		for _, e := range es {
			o := obj{{"start", e.start}, {"end", e.end}}
			arr = append(arr, append(o, e.fields...))
		}
		ents = append(ents, kv{name, arr})
	}
	addEnts("hashtags", t.hashtags)
	addEnts("mentions", t.mentions)
	addEnts("urls", t.urls)
	if len(ents) > 0 {
		data = append(data, kv{"entities", ents})
	}
	if t.edits > 0 {
		data = append(data, kv{"edit_controls", obj{{"edits_remaining", 5 - t.edits - 1}, {"is_edit_eligible", true}, {"editable_until", t.created.Add(time.Hour).Format("2006-01-02T15:04:05.000Z")}}})
	}
	// Real streams do not keep one key order: shuffle the data object's.
	g.r.Shuffle(len(data), func(i, j int) { data[i], data[j] = data[j], data[i] })
	if extra != nil {
		data = extra(data)
	}
	users := []any{userObj(t.author)}
	for _, m := range t.mentioned {
		if m.id != t.author.id {
			users = append(users, userObj(m))
		}
	}
	includes := obj{{"users", users}}
	if t.ref != nil && t.ref.typ != "replied_to" {
		includes = append(includes, kv{"tweets", []any{obj{
			{"edit_history_tweet_ids", []any{t.ref.p.id}}, {"id", t.ref.p.id}, {"text", t.ref.p.text}, {"author_id", t.ref.p.authorID},
		}}})
	}
	var matched []any
	matched = append(matched, obj{{"id", rules[0].id}, {"tag", rules[0].tag}})
	if t.lang == "ja" {
		matched = append(matched, obj{{"id", rules[1].id}, {"tag", rules[1].tag}})
	}
	if len(t.urls) > 0 {
		matched = append(matched, obj{{"id", rules[2].id}, {"tag", rules[2].tag}})
	}
	if len(t.hashtags) > 0 {
		matched = append(matched, obj{{"id", rules[3].id}, {"tag", rules[3].tag}})
	}
	line := obj{{"data", data}, {"includes", includes}, {"matching_rules", matched}}
	return encode(line)
}

func userObj(u user) obj {
	o := obj{{"created_at", u.created}, {"id", u.id}, {"name", u.name}, {"username", u.username}}
	if u.verified {
		o = append(o, kv{"verified", true})
	}
	return o
}

// edgeCases returns the lines of edge.jsonl, in the order README.md lists.
func (g *gen) edgeCases() [][]byte {
	mk := func(l string, text string) *tweetDraft {
		g.now = g.now.Add(20 * time.Millisecond)
		t := &tweetDraft{id: g.snowflake(g.now, 7), author: g.users[g.r.IntN(len(g.users))], lang: l, created: g.now}
		t.text.WriteString(text)
		return t
	}
	var out [][]byte
	const marker = "\x00MARK\x00"
	// 1. A NUL character, escaped, in the text. Valid JSON; jsonb rejects it.
	t := mk("en", "null byte here:"+marker+"and after it")
	out = append(out, bytes.Replace(g.render(t, t.text.String(), nil), []byte(`\u0000MARK\u0000`), []byte(`\u0000`), 1))
	// 2. A lone high surrogate, escaped, in the text. jsonb rejects it.
	t = mk("en", "half an emoji "+marker+" end")
	out = append(out, bytes.Replace(g.render(t, t.text.String(), nil), []byte(`\u0000MARK\u0000`), []byte(`\ud83d`), 1))
	// 3. A lone low surrogate, escaped, in the author's name.
	t = mk("en", "the author's name is broken")
	t.author.name = "broken" + marker + "name"
	out = append(out, bytes.Replace(g.render(t, t.text.String(), nil), []byte(`\u0000MARK\u0000`), []byte(`\udc00`), 1))
	// 4. A very long line: a long-form post (note_tweet) of 20,000
	// characters mixing scripts, with 120 users in includes.
	var long strings.Builder
	for long.Len() < 60_000 {
		long.WriteString(g.pick(vocab[g.pick([]string{"en", "ja", "ar", "ko", "ru"})]))
		long.WriteString(" ")
	}
	note := string([]rune(long.String())[:20_000])
	t = mk("und", string([]rune(note)[:270])+"…")
	for len(t.mentioned) < 120 {
		t.mentioned = append(t.mentioned, g.users[len(t.mentioned)*7%len(g.users)])
	}
	out = append(out, g.render(t, t.text.String(), func(d obj) obj {
		return append(d, kv{"note_tweet", obj{{"text", note}}})
	}))
	// 5. Escaped control characters and line separators in the text, and
	// matching_rules as the first key.
	t = mk("en", "tab\there, newline\nthere, CR\rand U+2028\u2028U+2029\u2029 \"quoted\" back\\slash")
	line := g.render(t, t.text.String(), nil)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		log.Fatal(err)
	}
	out = append(out, encode(obj{{"matching_rules", m["matching_rules"]}, {"data", m["data"]}, {"includes", m["includes"]}}))
	// 6. A tweet with partial errors (an expansion that could not be
	// resolved): still a tweet.
	t = mk("es", "respuesta a un tuit borrado")
	t.inReplyTo = "1234567"
	line = g.render(t, t.text.String(), nil)
	line = append(line[:len(line)-1], []byte(`,"errors":[{"value":"1895512838000000001","detail":"Could not find tweet with referenced_tweets.id: [1895512838000000001].","title":"Not Found Error","resource_type":"tweet","parameter":"referenced_tweets.id","resource_id":"1895512838000000001","type":"https://api.twitter.com/2/problems/resource-not-found"}]}`)...)
	out = append(out, line)
	// 7. Older capture style: matching_rules with a numeric id and a null tag.
	t = mk("fr", "ancien format des règles")
	line = g.render(t, t.text.String(), nil)
	i := bytes.Index(line, []byte(`,"matching_rules":`))
	line = append(line[:i], []byte(`,"matching_rules":[{"id":1377649934414049282,"tag":null}]}`)...)
	out = append(out, line)
	return out
}

// obj is a JSON object that keeps its key order.
type obj []kv

type kv struct {
	k string
	v any
}

func encode(v any) []byte {
	var b bytes.Buffer
	writeJSON(&b, v)
	return b.Bytes()
}

func writeJSON(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case obj:
		b.WriteByte('{')
		for i, f := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, f.k)
			b.WriteByte(':')
			writeJSON(b, f.v)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, e)
		}
		b.WriteByte(']')
	case string:
		writeString(b, v)
	case int:
		b.WriteString(strconv.Itoa(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.RawMessage:
		b.Write(v)
	default:
		panic(fmt.Sprintf("gen: cannot encode %T", v))
	}
}

func writeString(b *bytes.Buffer, s string) {
	var tmp bytes.Buffer
	e := json.NewEncoder(&tmp)
	e.SetEscapeHTML(false)
	if err := e.Encode(s); err != nil {
		panic(err)
	}
	b.Write(bytes.TrimSuffix(tmp.Bytes(), []byte("\n")))
}

// asciiEscape rewrites every non-ASCII character of a JSON line as a \u
// escape (surrogate pairs above U+FFFF). Non-ASCII bytes only occur inside
// strings, so the result is the same JSON value.
func asciiEscape(line []byte) []byte {
	var b bytes.Buffer
	for _, r := range string(line) {
		switch {
		case r < 0x80:
			b.WriteByte(byte(r))
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.Bytes()
}

var emoji = []string{"😀", "😂", "🥲", "😍", "🔥", "✨", "🎉", "👍", "🙏", "💯", "🚀", "🌧️", "☕", "🍜", "⚽", "🏳️‍🌈", "👩🏽‍💻", "🇯🇵", "🇧🇷", "❤️", "🤔", "😭", "🎶", "📈"}

var hashtags = map[string][]string{
	"*":   {"AI", "Causeway", "Streaming", "WorldCup", "Music", "NowPlaying", "Breaking", "Weather"},
	"en":  {"MondayMotivation", "golang", "OpenSource", "100DaysOfCode", "Elections2025", "Climate"},
	"ja":  {"拡散希望", "今日の一枚", "相互フォロー", "おはようVtuber", "東京"},
	"es":  {"FelizLunes", "LaLiga", "Noticias", "Madrid"},
	"pt":  {"Brasil", "BBB25", "Futebol", "BomDia"},
	"ar":  {"السعودية", "رمضان_كريم", "عاجل", "مصر"},
	"ko":  {"방탄소년단", "오늘의일상", "서울"},
	"zh":  {"春节", "北京", "新闻"},
	"fr":  {"Paris", "Actu", "LigueDesChampions"},
	"tr":  {"İstanbul", "Gündem", "Deprem"},
	"hi":  {"भारत", "क्रिकेट", "मुंबई"},
	"ru":  {"Москва", "Новости"},
	"de":  {"Berlin", "Bundesliga", "Wetter"},
	"fa":  {"ایران", "تهران"},
	"he":  {"ישראל", "תלאביב"},
	"th":  {"กรุงเทพ", "ข่าว"},
	"in":  {"Jakarta", "Indonesia"},
	"und": {"😂", "2025", "F1"},
}

var names = map[string][]string{
	"en":  {"Alex Morgan", "Sam Carter", "Jordan Lee", "Priya Shah", "Chris O'Neil", "Taylor Brooks", "Robin Hale", "Casey Ward"},
	"ja":  {"さくら", "田中 太郎", "ゆうき", "鈴木花子", "ハル", "山本けんじ"},
	"es":  {"María López", "José García", "Lucía Fernández", "Diego Ruiz"},
	"pt":  {"João Silva", "Ana Souza", "Luísa Costa", "Pedro Alves"},
	"ar":  {"محمد العتيبي", "فاطمة", "أحمد علي", "نورة"},
	"ko":  {"김민준", "이서연", "박지훈"},
	"zh":  {"王小明", "李华", "张伟"},
	"fr":  {"Émilie Dubois", "Lucas Martin", "Chloé Bernard"},
	"tr":  {"Ayşe Yılmaz", "Mehmet Öztürk", "Elif Şahin"},
	"hi":  {"राहुल शर्मा", "प्रिया", "अमित कुमार"},
	"ru":  {"Иван Петров", "Анна Смирнова", "Дмитрий"},
	"de":  {"Jürgen Müller", "Lena Schäfer", "Max Weiß"},
	"fa":  {"علی رضایی", "مریم", "سارا"},
	"he":  {"נועה כהן", "דוד לוי", "יעל"},
	"th":  {"สมชาย", "มาลี", "ณัฐ"},
	"in":  {"Budi Santoso", "Siti Rahma", "Agus"},
	"und": {"🌙", "✨ star ✨", "x_x", "404"},
}

var vocab = map[string][]string{
	"en": {"the", "morning", "train", "is", "late", "again", "coffee", "helps", "a", "lot", "new", "release", "today", "we", "shipped", "it",
		"weather", "looks", "great", "for", "the", "match", "tonight", "who", "is", "watching", "just", "finished", "reading", "this", "thread",
		"honestly", "cannot", "believe", "what", "happened", "in", "the", "final", "minute", "streaming", "pipelines", "backpressure", "matters",
		"my", "cat", "sat", "on", "the", "keyboard", "so", "this", "is", "her", "tweet", "election", "results", "are", "coming", "in", "slowly"},
	"ja": {"今日は", "とても", "良い天気", "ですね", "電車が", "遅れて", "います", "新しい", "動画を", "公開しました", "ありがとうございます", "よろしくお願いします",
		"ラーメン", "食べたい", "明日も", "がんばろう", "桜が", "咲きました", "ライブ", "最高", "だった", "！", "、", "。", "推しが", "尊い"},
	"es": {"hoy", "es", "un", "gran", "día", "para", "salir", "el", "partido", "de", "esta", "noche", "qué", "golazo", "no", "puedo", "creerlo",
		"buenos", "días", "a", "todos", "nueva", "canción", "ya", "disponible", "gracias", "por", "el", "apoyo", "mañana", "más"},
	"pt": {"bom", "dia", "gente", "hoje", "tem", "jogo", "do", "Flamengo", "que", "saudade", "de", "você", "muito", "obrigado", "pelo", "carinho",
		"vamos", "nessa", "chuva", "em", "São", "Paulo", "não", "para"},
	"ar": {"صباح", "الخير", "يا", "جماعة", "اليوم", "مباراة", "مهمة", "جداً", "الحمد", "لله", "على", "كل", "حال", "شكراً", "لكم", "خبر", "عاجل",
		"الطقس", "جميل", "في", "الرياض", "رمضان", "كريم"},
	"ko": {"오늘", "날씨", "정말", "좋다", "새", "앨범", "나왔어요", "감사합니다", "내일", "봐요", "진짜", "대박", "커피", "한잔", "하고", "싶다"},
	"zh": {"今天", "天气", "很好", "我们", "一起", "去", "吃饭", "吧", "新", "视频", "发布", "了", "谢谢", "大家", "支持", "，", "。", "太", "好看"},
	"fr": {"bonjour", "à", "tous", "il", "fait", "beau", "aujourd'hui", "le", "match", "de", "ce", "soir", "sera", "serré", "merci", "pour",
		"votre", "soutien", "nouvelle", "vidéo", "en", "ligne", "ça", "va", "être", "génial"},
	"tr":  {"günaydın", "herkese", "bugün", "hava", "çok", "güzel", "maç", "akşam", "saat", "yedide", "teşekkürler", "yeni", "şarkı", "çıktı"},
	"hi":  {"आज", "का", "दिन", "बहुत", "अच्छा", "है", "मैच", "देखो", "धन्यवाद", "सभी", "को", "नमस्ते", "नया", "वीडियो"},
	"ru":  {"доброе", "утро", "сегодня", "отличная", "погода", "новый", "релиз", "вышел", "спасибо", "всем", "кто", "смотрит", "матч"},
	"de":  {"guten", "Morgen", "heute", "ist", "schönes", "Wetter", "das", "Spiel", "war", "großartig", "danke", "für", "eure", "Unterstützung"},
	"fa":  {"سلام", "دوستان", "امروز", "هوا", "خیلی", "خوب", "است", "ممنون", "از", "همه", "خبر", "جدید"},
	"he":  {"בוקר", "טוב", "לכולם", "היום", "מזג", "האוויר", "נהדר", "תודה", "רבה", "משחק", "הערב"},
	"th":  {"สวัสดี", "ครับ", "ค่ะ", "วันนี้", "อากาศ", "ดีมาก", "ขอบคุณ", "ทุกคน", "ข่าว", "ใหม่"},
	"in":  {"selamat", "pagi", "semua", "hari", "ini", "cuaca", "cerah", "terima", "kasih", "banyak", "pertandingan", "malam"},
	"und": {"😂😂😂", "🔥🔥", "lol", "???", "!!!", "2025", "👀", "…", "🙏🙏", "ok"},
}

func init() {
	for _, l := range langs {
		if _, ok := vocab[l.code]; !ok {
			panic("gen: no vocabulary for " + l.code)
		}
		if _, ok := names[l.code]; !ok {
			panic("gen: no names for " + l.code)
		}
	}
}
