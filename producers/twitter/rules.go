package twitter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// ServerRule is a rule as the server holds it.
type ServerRule struct {
	ID    string `json:"id"`
	Value string `json:"value"`
	Tag   string `json:"tag,omitempty"`
}

// RulesPlan is what a rules sync does: rules to keep, to add and to delete.
// A rule is identified by its value and tag; a configured rule whose tag
// changed is deleted and added again.
type RulesPlan struct {
	Keep   []ServerRule
	Add    []Rule
	Delete []ServerRule
	DryRun bool
}

func (p RulesPlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "keep %d, add %d, delete %d", len(p.Keep), len(p.Add), len(p.Delete))
	for _, r := range p.Add {
		fmt.Fprintf(&b, "\n  + %q tag %q", r.Value, r.Tag)
	}
	for _, r := range p.Delete {
		fmt.Fprintf(&b, "\n  - %q tag %q (id %s)", r.Value, r.Tag, r.ID)
	}
	return b.String()
}

// RuleError is a rule the server rejected.
type RuleError struct {
	Value   string
	Tag     string
	ID      string // for deletions
	Title   string // e.g. "DuplicateRule", "UnprocessableEntity"
	Type    string
	Details []string
}

// RulesError is the error of a rules sync the server refused in part: it
// names every rejected rule.
type RulesError struct {
	Op       string // "add" or "delete" (or "validate", in a dry run)
	Rejected []RuleError
}

func (e *RulesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "twitter: rules sync: the server rejected %d rule(s) to %s:", len(e.Rejected), e.Op)
	for _, r := range e.Rejected {
		if r.Value != "" {
			fmt.Fprintf(&b, " rule %q", r.Value)
		} else {
			fmt.Fprintf(&b, " rule id %s", r.ID)
		}
		if r.Tag != "" {
			fmt.Fprintf(&b, " (tag %q)", r.Tag)
		}
		fmt.Fprintf(&b, ": %s", r.Title)
		if len(r.Details) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(r.Details, "; "))
		}
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";")
}

func (s *Stream) syncOnce(ctx context.Context) (RulesPlan, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced {
		return s.plan, nil
	}
	s.state.Store(int32(StateSyncing))
	plan, err := s.SyncRules(ctx)
	if err != nil {
		return plan, err
	}
	s.synced, s.plan = true, plan
	return plan, nil
}

// SyncRules makes the server's filtered-stream rules equal to Config.Rules:
// it reads them, deletes those not configured and adds the configured ones
// missing. With Config.RulesDryRun it only validates the additions
// (dry_run=true) and changes nothing. The plan is logged and returned.
func (s *Stream) SyncRules(ctx context.Context) (RulesPlan, error) {
	plan := RulesPlan{DryRun: s.cfg.RulesDryRun}
	tr, note := s.transport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	current, err := s.rules(ctx, client)
	if err != nil {
		return plan, s.orPermanent(note, rulesPath, err)
	}
	want := map[Rule]bool{}
	for _, r := range s.cfg.Rules {
		want[r] = true
	}
	have := map[Rule]bool{}
	for _, r := range current {
		k := Rule{Value: r.Value, Tag: r.Tag}
		if want[k] && !have[k] {
			plan.Keep = append(plan.Keep, r)
		} else {
			plan.Delete = append(plan.Delete, r)
		}
		have[k] = true
	}
	for _, r := range s.cfg.Rules {
		if !have[r] {
			plan.Add = append(plan.Add, r)
		}
	}
	s.log.Info("twitter: rules sync plan", "dry_run", plan.DryRun, "keep", len(plan.Keep), "add", len(plan.Add),
		"delete", len(plan.Delete), "plan", plan.String())
	if plan.DryRun {
		if len(plan.Add) > 0 {
			err := s.addRules(ctx, client, plan.Add, true)
			var re *RulesError
			if errors.As(err, &re) {
				// Without the deletions the plan would make first, a
				// re-tagged rule is a duplicate of its old self: not an error.
				deleted := map[string]bool{}
				for _, r := range plan.Delete {
					deleted[r.Value] = true
				}
				re.Rejected = slices.DeleteFunc(re.Rejected, func(r RuleError) bool {
					return r.Title == "DuplicateRule" && deleted[r.Value]
				})
				if len(re.Rejected) == 0 {
					err = nil
				}
			}
			if err != nil {
				return plan, err
			}
		}
		return plan, nil
	}
	if len(plan.Delete) > 0 {
		if err := s.deleteRules(ctx, client, plan.Delete); err != nil {
			return plan, err
		}
	}
	if len(plan.Add) > 0 {
		if err := s.addRules(ctx, client, plan.Add, false); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

const rulesPath = "/2/tweets/search/stream/rules"

func (s *Stream) rulesURL(dryRun bool) string {
	u := s.base.String() + rulesPath
	if dryRun {
		u += "?dry_run=true"
	}
	return u
}

// Rules returns the server's current filtered-stream rules.
func (s *Stream) Rules(ctx context.Context) ([]ServerRule, error) {
	tr, note := s.transport()
	defer tr.CloseIdleConnections()
	rules, err := s.rules(ctx, &http.Client{Transport: tr})
	return rules, s.orPermanent(note, rulesPath, err)
}

func (s *Stream) rules(ctx context.Context, client *http.Client) ([]ServerRule, error) {
	var out struct {
		Data []ServerRule `json:"data"`
	}
	if err := s.rulesCall(ctx, client, http.MethodGet, s.rulesURL(false), nil, http.StatusOK, "read the rules", &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

type rulesAnswer struct {
	Data []ServerRule `json:"data"`
	Meta struct {
		Summary map[string]int `json:"summary"`
	} `json:"meta"`
	Errors []struct {
		Value   string   `json:"value"`
		ID      string   `json:"id"`
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Details []string `json:"details"`
		Detail  string   `json:"detail"`
	} `json:"errors"`
}

func (a *rulesAnswer) rejected(tags map[string]string) []RuleError {
	var out []RuleError
	for _, e := range a.Errors {
		re := RuleError{Value: e.Value, ID: e.ID, Tag: tags[e.Value], Title: e.Title, Type: e.Type, Details: e.Details}
		if len(re.Details) == 0 && e.Detail != "" {
			re.Details = []string{e.Detail}
		}
		out = append(out, re)
	}
	return out
}

func (s *Stream) addRules(ctx context.Context, client *http.Client, add []Rule, dryRun bool) error {
	type rule struct {
		Value string `json:"value"`
		Tag   string `json:"tag,omitempty"`
	}
	body := struct {
		Add []rule `json:"add"`
	}{}
	tags := map[string]string{}
	for _, r := range add {
		body.Add = append(body.Add, rule{r.Value, r.Tag})
		tags[r.Value] = r.Tag
	}
	var a rulesAnswer
	want := http.StatusCreated
	if dryRun {
		want = http.StatusOK // some servers answer 200 to a dry run; both are accepted below
	}
	if err := s.rulesCall(ctx, client, http.MethodPost, s.rulesURL(dryRun), body, want, "add rules", &a); err != nil {
		return err
	}
	if len(a.Errors) > 0 {
		op := "add"
		if dryRun {
			op = "validate"
		}
		return &RulesError{Op: op, Rejected: a.rejected(tags)}
	}
	return nil
}

func (s *Stream) deleteRules(ctx context.Context, client *http.Client, del []ServerRule) error {
	body := struct {
		Delete struct {
			IDs []string `json:"ids"`
		} `json:"delete"`
	}{}
	tags := map[string]string{}
	for _, r := range del {
		body.Delete.IDs = append(body.Delete.IDs, r.ID)
		tags[r.Value] = r.Tag
	}
	var a rulesAnswer
	if err := s.rulesCall(ctx, client, http.MethodPost, s.rulesURL(false), body, http.StatusOK, "delete rules", &a); err != nil {
		return err
	}
	if len(a.Errors) > 0 {
		return &RulesError{Op: "delete", Rejected: a.rejected(tags)}
	}
	if got := a.Meta.Summary["deleted"]; got != len(del) {
		return fmt.Errorf("twitter: rules sync: asked to delete %d rules, the server deleted %d", len(del), got)
	}
	return nil
}

// rulesCall sends one rules request and decodes its JSON answer.
func (s *Stream) rulesCall(ctx context.Context, client *http.Client, method, url string, in any, want int, op string, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("twitter: %s: %w", op, err)
	}
	s.authorize(req)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("twitter: %s: %w", op, s.redact(err))
	}
	defer resp.Body.Close()
	ok := resp.StatusCode == want || (want == http.StatusOK && resp.StatusCode == http.StatusCreated)
	if !ok {
		if a, isRules := out.(*rulesAnswer); isRules && resp.StatusCode == http.StatusBadRequest {
			// Rejected rules may come with a 400: keep them if the body
			// names them.
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			if json.Unmarshal(b, a) == nil && len(a.Errors) > 0 && (a.Errors[0].Value != "" || a.Errors[0].ID != "") {
				return nil
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
		}
		return s.problem(resp, op)
	}
	if resp.ProtoMajor != 2 {
		return fmt.Errorf("twitter: %s: answered over %s, want HTTP/2", op, resp.Proto)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("twitter: %s: read the answer: %w", op, s.redact(err))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("twitter: %s: decode the answer: %w", op, err)
	}
	return nil
}
