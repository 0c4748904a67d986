package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// VerifyOptions says how Verify finds the id of a line.
type VerifyOptions struct {
	// IDField is the dotted path of the id in each JSON line, such as
	// "data.id" for X API stream lines. A string id is taken as it is, any
	// other JSON value as its text. Empty: no ids, unless ID is set.
	IDField string

	// ID, if set, returns a line's id (ok false: the line has none). It
	// takes precedence over IDField.
	ID func(line []byte) (id string, ok bool)

	// MaxDuplicates is how many duplicated ids the report lists. Default 20.
	MaxDuplicates int
}

// Report is what Verify found in a directory.
type Report struct {
	Dir   string       `json:"dir"`
	Files []FileReport `json:"files"`

	Lines     int64 `json:"lines"`      // lines in complete members, in every file
	JSONLines int64 `json:"json_lines"` // of those, lines that are valid JSON
	IDs       int64 `json:"ids"`        // lines with an id
	UniqueIDs int64 `json:"unique_ids"` // distinct ids
	// Duplicates counts lines whose id an earlier line (in file name
	// order) already had; DuplicateIDs lists the first few such ids.
	Duplicates   int64    `json:"duplicates"`
	DuplicateIDs []string `json:"duplicate_ids,omitempty"`
	Damaged      int      `json:"damaged_files"` // files with damage or that could not be read
}

// OK reports whether every file is valid gzip of complete lines.
func (r *Report) OK() bool { return r.Damaged == 0 }

// WriteText writes the report for a person: a line for the directory, then
// a line per file, then a line per damage. It is what a command such as
// `causeway archive verify DIR` prints.
func (r *Report) WriteText(w io.Writer) error {
	status := "ok"
	if !r.OK() {
		status = fmt.Sprintf("%d damaged", r.Damaged)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d files, %d lines (%d JSON), %d ids (%d unique, %d duplicated): %s\n",
		r.Dir, len(r.Files), r.Lines, r.JSONLines, r.IDs, r.UniqueIDs, r.Duplicates, status)
	for _, f := range r.Files {
		fmt.Fprintf(&b, "  %s  %d bytes, %d members, %d lines, %d JSON, %d ids\n",
			filepath.Base(f.Path), f.Size, f.Members, f.Lines, f.JSONLines, f.IDs)
		if f.Err != "" {
			fmt.Fprintf(&b, "    unreadable: %s\n", f.Err)
		}
		for _, d := range f.Damage {
			fmt.Fprintf(&b, "    damage: %s\n", d)
		}
	}
	if len(r.DuplicateIDs) > 0 {
		fmt.Fprintf(&b, "  duplicated ids (first %d): %s\n", len(r.DuplicateIDs), strings.Join(r.DuplicateIDs, " "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FileReport is what Verify found in one file.
type FileReport struct {
	Path      string   `json:"path"`
	Size      int64    `json:"size"`
	Members   int      `json:"members"` // complete gzip members (batches)
	Lines     int64    `json:"lines"`
	JSONLines int64    `json:"json_lines"`
	IDs       int64    `json:"ids"`
	Damage    []Damage `json:"damage,omitempty"`
	Err       string   `json:"error,omitempty"` // the file could not be read
}

// Damage is a stretch of a file that is not part of a complete, valid
// member, or a member whose last line has no newline.
type Damage struct {
	Offset int64  `json:"offset"` // where the stretch starts
	Length int64  `json:"length"` // its bytes: to the next valid member or the end of the file
	Reason string `json:"reason"`
}

// String describes the damage in one line.
func (d Damage) String() string {
	return fmt.Sprintf("%d bytes at offset %d: %s", d.Length, d.Offset, d.Reason)
}

// Verify checks every *.gz file in dir (not its subdirectories), in name
// order: that it is a sequence of complete, valid gzip members, each ending
// with a newline; how many lines, JSON lines and ids it holds; and which
// ids occur more than once across the directory. Damage is reported with
// its offsets, and the members after it are still read. Verify returns an
// error only if dir cannot be listed; a file it cannot read is reported as
// damaged.
//
// Verify keeps every id in memory, about 60 bytes each.
func Verify(dir string, opts VerifyOptions) (*Report, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.gz"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("archive: verify: %w", err)
	}
	if opts.MaxDuplicates <= 0 {
		opts.MaxDuplicates = 20
	}
	v := &verifier{opts: opts, seen: map[string]struct{}{}, rep: &Report{Dir: dir, Files: []FileReport{}}}
	if v.opts.ID == nil && opts.IDField != "" {
		path := strings.Split(opts.IDField, ".")
		v.opts.ID = func(line []byte) (string, bool) { return jsonField(line, path) }
	}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			continue
		}
		fr := v.file(p)
		if fr.Err != "" || len(fr.Damage) > 0 {
			v.rep.Damaged++
		}
		v.rep.Files = append(v.rep.Files, fr)
	}
	v.rep.UniqueIDs = int64(len(v.seen))
	return v.rep, nil
}

type verifier struct {
	opts VerifyOptions
	seen map[string]struct{}
	rep  *Report
}

func (v *verifier) file(path string) FileReport {
	fr := FileReport{Path: path}
	f, err := os.Open(path)
	if err != nil {
		fr.Err = err.Error()
		return fr
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fr.Err = err.Error()
		return fr
	}
	fr.Size = st.Size()
	for off := int64(0); off < fr.Size; {
		end, members, err := scanMembers(io.NewSectionReader(f, off, fr.Size-off), off, func(at int64, content []byte) {
			v.content(&fr, at, content)
		})
		fr.Members += members
		if err == nil {
			break
		}
		next, nerr := nextMember(f, end+1, fr.Size)
		if nerr != nil {
			fr.Err = nerr.Error()
			return fr
		}
		if next < 0 {
			fr.Damage = append(fr.Damage, Damage{Offset: end, Length: fr.Size - end, Reason: err.Error()})
			break
		}
		fr.Damage = append(fr.Damage, Damage{Offset: end, Length: next - end, Reason: err.Error() + "; valid members follow"})
		off = next
	}
	return fr
}

// content counts the lines of one complete member.
func (v *verifier) content(fr *FileReport, off int64, content []byte) {
	if len(content) > 0 && content[len(content)-1] != '\n' {
		fr.Damage = append(fr.Damage, Damage{Offset: off, Reason: "a member's last line has no newline: a line may be split"})
	}
	for len(content) > 0 {
		line := content
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			content = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		fr.Lines++
		v.rep.Lines++
		if json.Valid(line) {
			fr.JSONLines++
			v.rep.JSONLines++
		}
		if v.opts.ID == nil {
			continue
		}
		id, ok := v.opts.ID(line)
		if !ok {
			continue
		}
		fr.IDs++
		v.rep.IDs++
		if _, dup := v.seen[id]; dup {
			v.rep.Duplicates++
			if len(v.rep.DuplicateIDs) < v.opts.MaxDuplicates {
				v.rep.DuplicateIDs = append(v.rep.DuplicateIDs, id)
			}
			continue
		}
		v.seen[id] = struct{}{}
	}
}

// jsonField returns the value at path in a JSON object line: a string as
// it is, null as no value, anything else as its JSON text.
func jsonField(line []byte, path []string) (string, bool) {
	raw := json.RawMessage(line)
	for _, key := range path {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return "", false
		}
		var ok bool
		if raw, ok = obj[key]; !ok {
			return "", false
		}
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", false
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	return string(raw), true
}
