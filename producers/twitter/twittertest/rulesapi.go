package twittertest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	typeInvalidRules   = "https://api.twitter.com/2/problems/invalid-rules"
	typeDuplicateRules = "https://api.twitter.com/2/problems/duplicate-rules"
	typeRuleCap        = "https://api.twitter.com/2/problems/rule-cap"
)

func sent() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// serveRules serves GET and POST /2/tweets/search/stream/rules.
func (s *Server) serveRules(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.getRules(w, r)
	case http.MethodPost:
		s.postRules(w, r)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, problem("Method Not Allowed", "Method Not Allowed", "about:blank", 405))
	}
}

func (s *Server) getRules(w http.ResponseWriter, r *http.Request) {
	var ids map[string]bool
	if v := r.URL.Query().Get("ids"); v != "" {
		ids = map[string]bool{}
		for id := range strings.SplitSeq(v, ",") {
			ids[id] = true
		}
	}
	s.mu.Lock()
	var data []StoredRule
	for _, rule := range s.rules {
		if ids == nil || ids[rule.ID] {
			data = append(data, rule)
		}
	}
	s.mu.Unlock()
	out := map[string]any{"meta": map[string]any{"sent": sent(), "result_count": len(data)}}
	if len(data) > 0 {
		out["data"] = data
	}
	writeJSON(w, http.StatusOK, out)
}

type rulesRequest struct {
	Add []struct {
		Value *string `json:"value"`
		Tag   string  `json:"tag"`
	} `json:"add"`
	Delete *struct {
		IDs    []string `json:"ids"`
		Values []string `json:"values"`
	} `json:"delete"`
}

func (s *Server) postRules(w http.ResponseWriter, r *http.Request) {
	dryRun := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.reject(w, http.StatusBadRequest, invalidRequest("The `dry_run` query parameter value ["+v+"] is not a boolean",
				map[string]any{"dry_run": []string{v}}))
			return
		}
		dryRun = b
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var req rulesRequest
	if err == nil {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	if err != nil || (req.Add == nil) == (req.Delete == nil) {
		s.reject(w, http.StatusBadRequest, invalidRequest("JSON doesn't match expected schema",
			map[string]any{"body": []string{strings.TrimSpace(string(body))}}))
		return
	}
	if req.Delete != nil {
		s.deleteRules(w, req, dryRun)
		return
	}
	s.addRules(w, req, dryRun)
}

func (s *Server) addRules(w http.ResponseWriter, req rulesRequest, dryRun bool) {
	for _, a := range req.Add {
		if a.Value == nil {
			s.reject(w, http.StatusBadRequest, invalidRequest("Each rule to add needs a value", map[string]any{"add": []string{"value"}}))
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var created []StoredRule
	var errs []any
	invalid := 0
	values := map[string]string{}
	for _, rule := range s.rules {
		values[rule.Value] = rule.ID
	}
	total := len(s.rules)
	for _, a := range req.Add {
		v := *a.Value
		parsed, err := ParseRule(v)
		switch {
		case err != nil:
			invalid++
			errs = append(errs, map[string]any{"value": v, "details": []string{err.Error()},
				"title": "UnprocessableEntity", "type": typeInvalidRules})
		case values[v] != "":
			errs = append(errs, map[string]any{"value": v, "id": values[v], "title": "DuplicateRule", "type": typeDuplicateRules})
		case total >= s.cfg.MaxRules:
			errs = append(errs, map[string]any{"value": v, "title": "RuleCapExceeded",
				"detail": "Rule cap of " + strconv.Itoa(s.cfg.MaxRules) + " rules exceeded", "type": typeRuleCap})
		default:
			s.ruleSeq++
			rule := StoredRule{ID: strconv.FormatInt(s.ruleSeq, 10), Value: v, Tag: a.Tag, rule: parsed}
			values[v] = rule.ID
			total++
			created = append(created, rule)
		}
	}
	if !dryRun {
		s.rules = append(s.rules, created...)
		s.recompile()
	}
	summary := map[string]any{"created": len(created), "not_created": len(req.Add) - len(created),
		"valid": len(req.Add) - invalid, "invalid": invalid}
	out := map[string]any{"meta": map[string]any{"sent": sent(), "summary": summary}}
	if len(created) > 0 {
		out["data"] = created
	}
	if len(errs) > 0 {
		out["errors"] = errs
	}
	status := http.StatusCreated
	if dryRun {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

func (s *Server) deleteRules(w http.ResponseWriter, req rulesRequest, dryRun bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	drop := map[string]bool{}
	var errs []any
	for _, id := range req.Delete.IDs {
		found := false
		for _, rule := range s.rules {
			found = found || rule.ID == id
		}
		if found {
			drop[id] = true
		} else {
			errs = append(errs, map[string]any{"id": id, "title": "RuleNotFound", "detail": "Rule does not exist",
				"type": typeInvalidRules})
		}
	}
	for _, v := range req.Delete.Values {
		found := false
		for _, rule := range s.rules {
			if rule.Value == v {
				drop[rule.ID], found = true, true
			}
		}
		if !found {
			errs = append(errs, map[string]any{"value": v, "title": "RuleNotFound", "detail": "Rule does not exist",
				"type": typeInvalidRules})
		}
	}
	if !dryRun {
		kept := s.rules[:0]
		for _, rule := range s.rules {
			if !drop[rule.ID] {
				kept = append(kept, rule)
			}
		}
		clear(s.rules[len(kept):])
		s.rules = kept
		s.recompile()
	}
	out := map[string]any{"meta": map[string]any{"sent": sent(),
		"summary": map[string]any{"deleted": len(drop), "not_deleted": len(errs)}}}
	if len(errs) > 0 {
		out["errors"] = errs
	}
	writeJSON(w, http.StatusOK, out)
}

// recompile publishes the rules to live streams. s.mu must be held.
func (s *Server) recompile() {
	rules := append([]StoredRule(nil), s.rules...)
	s.compiled.Store(&rules)
}

// AddRule adds a rule directly (for tests); it returns the rule's id.
func (s *Server) AddRule(value, tag string) (string, error) {
	parsed, err := ParseRule(value)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ruleSeq++
	rule := StoredRule{ID: strconv.FormatInt(s.ruleSeq, 10), Value: value, Tag: tag, rule: parsed}
	s.rules = append(s.rules, rule)
	s.recompile()
	return rule.ID, nil
}
