package archive_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/causeway-go/causeway/stages/archive"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := slices.Concat(member(t, `{"data":{"id":"1"}}`, `{"data":{"id":"2"}}`), member(t, `{"data":{"id":3}}`))
	write("a-good.jsonl.gz", good)
	write("b-mixed.jsonl.gz", member(t, `{"data":{"id":"2"}}`, `not json`, `{"data":{}}`, `{"data":{"id":null}}`))
	torn := member(t, `{"data":{"id":"4"}}`)
	write("c-torn.jsonl.gz", slices.Concat(torn, member(t, `{"data":{"id":"5"}}`)[:15]))
	bad := member(t, `{"data":{"id":"6"}}`)
	bad[len(bad)-1] ^= 1 // the length in the trailer
	write("d-middle.jsonl.gz", slices.Concat(bad, []byte("junk"), member(t, `{"data":{"id":"7"}}`)))
	write("e-empty.gz", nil)
	write("notes.txt", []byte("not an archive"))
	if err := os.Mkdir(filepath.Join(dir, "sub.gz"), 0o755); err != nil {
		t.Fatal(err)
	}

	rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "data.id"})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name                string
		members             int
		lines, json, ids    int64
		damageAt, damageLen []int64
	}
	want := []row{
		{"a-good.jsonl.gz", 2, 3, 3, 3, nil, nil},
		{"b-mixed.jsonl.gz", 1, 4, 3, 1, nil, nil},
		{"c-torn.jsonl.gz", 1, 1, 1, 1, []int64{int64(len(torn))}, []int64{15}},
		{"d-middle.jsonl.gz", 1, 1, 1, 1, []int64{0}, []int64{int64(len(bad) + 4)}},
		{"e-empty.gz", 0, 0, 0, 0, nil, nil},
	}
	if len(rep.Files) != len(want) {
		t.Fatalf("%d files reported, want %d: %+v", len(rep.Files), len(want), rep.Files)
	}
	for i, w := range want {
		f := rep.Files[i]
		var at, length []int64
		for _, d := range f.Damage {
			at, length = append(at, d.Offset), append(length, d.Length)
		}
		if filepath.Base(f.Path) != w.name || f.Members != w.members || f.Lines != w.lines || f.JSONLines != w.json || f.IDs != w.ids ||
			!slices.Equal(at, w.damageAt) || !slices.Equal(length, w.damageLen) {
			t.Errorf("file %d: %+v, want %+v", i, f, w)
		}
	}
	if r := rep.Files[2].Damage[0].Reason; !strings.Contains(r, "torn member") {
		t.Errorf("torn tail reason %q", r)
	}
	if r := rep.Files[3].Damage[0].Reason; !strings.Contains(r, "valid members follow") {
		t.Errorf("middle damage reason %q", r)
	}
	if rep.OK() || rep.Damaged != 2 || rep.Lines != 9 || rep.JSONLines != 8 || rep.IDs != 6 || rep.UniqueIDs != 5 ||
		rep.Duplicates != 1 || !slices.Equal(rep.DuplicateIDs, []string{"2"}) {
		t.Fatalf("report %+v", rep)
	}

	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		": 5 files, 9 lines (8 JSON), 6 ids (5 unique, 1 duplicated): 2 damaged\n",
		fmt.Sprintf("  c-torn.jsonl.gz  %d bytes, 1 members, 1 lines, 1 JSON, 1 ids\n    damage: 15 bytes at offset %d: torn member", len(torn)+15, len(torn)),
		"  duplicated ids (first 1): 2\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("WriteText lacks %q:\n%s", want, text.String())
		}
	}

	// An id function instead of a field path; a member whose last line has
	// no newline is damage.
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "x.gz"), slices.Concat(member(t, "k1 v", "k2 v"), gzipBytes(t, []byte("k1 w"))), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = archive.Verify(dir2, archive.VerifyOptions{ID: func(line []byte) (string, bool) {
		k, _, ok := strings.Cut(string(line), " ")
		return k, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f := rep.Files[0]; rep.OK() || f.Lines != 3 || rep.UniqueIDs != 2 || rep.Duplicates != 1 || len(f.Damage) != 1 || !strings.Contains(f.Damage[0].Reason, "no newline") {
		t.Fatalf("report %+v", rep)
	}

	if _, err := archive.Verify(filepath.Join(dir, "missing"), archive.VerifyOptions{}); err == nil {
		t.Fatal("Verify of a missing directory succeeded")
	}
}
