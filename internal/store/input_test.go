// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp/syntax"
	"strings"
	"testing"
	"time"
)

// TestRegexInstsBoundsTheCompiledSize: the estimate is at least what Go
// compiles each pattern to, so that the bound holds for what runs.
func TestRegexInstsBoundsTheCompiledSize(t *testing.T) {
	for _, s := range []string{
		"abc", ".*", "web-.*|db-[0-9]+", "(?i)container_.*_total", `^/docker/[0-9a-f]{64}$`,
		"(?:x{1000})", "((a{10}){10}){10}", "(a|b|c){3,7}", `\p{L}+x{5,}`, "(?:abc){0,100}",
		strings.Repeat("(?:x{1000})", 30), strings.Repeat("[a-z]{20}|", 50) + "z",
	} {
		re, err := syntax.Parse(s, syntax.Perl|syntax.DotNL)
		if err != nil {
			t.Fatal(err)
		}
		est := regexInsts(re)
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(len(prog.Inst)); est < got {
			t.Errorf("%.40q: estimated %d instructions, compiles to %d", s, est, got)
		} else {
			t.Logf("%.40q: estimated %d instructions, compiles to %d", s, est, got)
		}
	}
}

// TestSelectorsAreBoundedBeforeParsing: the regular expressions of a
// query or of match[], and the number of match[], are bounded before
// anything compiles or selects them: 8 short patterns once took 17 s and
// 2.2 GiB of heap to parse, and 9 990 match[] 90 s and 370 MiB to
// select, past any timeout. What a dashboard asks is still answered.
func TestSelectorsAreBoundedBeforeParsing(t *testing.T) {
	st := openStore(t, Options{})
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	synthetic(t, st, start, 10*time.Second, 6, 20)
	mux := http.NewServeMux()
	for p, h := range NewAPI(st, NewEngine(st.Queryable(), Limits{}, nil), "test", nil).Handlers() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(path string, v url.Values) (int, response) {
		resp, err := http.PostForm(srv.URL+path, v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r response
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r
	}
	repeat := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	bomb := `{name=~"` + strings.Repeat("(?:x{1000})", 3000) + `"}`
	at := fmt.Sprint(start.Add(time.Minute).Unix())
	rng := url.Values{"start": {fmt.Sprint(start.Unix())}, "end": {at}, "step": {"10"}}
	with := func(v url.Values, k, q string) url.Values {
		out := url.Values{k: {q}}
		for k, vs := range v {
			out[k] = vs
		}
		return out
	}
	for _, tc := range []struct {
		name, path string
		v          url.Values
		want       string // "" for success
	}{
		{"a regex bomb in a query", "/api/v1/query", url.Values{"query": {bomb}, "time": {at}}, "more than 200000 instructions"},
		{"one in a range query", "/api/v1/query_range", with(rng, "query", "sum("+bomb+")"), "more than 200000 instructions"},
		{"one in label_replace", "/api/v1/query", url.Values{"query": {`label_replace(vector(1), "a", "$1", "b", "` + strings.Repeat("(?:x{1000})", 3000) + `")`}}, "more than 200000 instructions"},
		{"many small ones", "/api/v1/query", url.Values{"query": {strings.Repeat(`{name=~"x{1000}"} or `, 300) + "vector(1)"}}, "more than 200000 instructions"},
		{"one in match[]", "/api/v1/series", url.Values{"match[]": {bomb}}, "more than 200000 instructions"},
		{"one in labels' match[]", "/api/v1/labels", url.Values{"match[]": {bomb}}, "more than 200000 instructions"},
		{"too many match[]", "/api/v1/series", url.Values{"match[]": repeat(`{__name__=~".+"}`, 101)}, "101 given, at most 100"},
		{"too many for label values", "/api/v1/label/name/values", url.Values{"match[]": repeat(`{__name__=~".+"}`, 101)}, "at most 100"},
		{"a dashboard's regex", "/api/v1/query", url.Values{"query": {`sum by (name) (container_cpu_usage_seconds_total{name=~"c1|c2|c3.*"})`}, "time": {at}}, ""},
		{"a long alternation", "/api/v1/series", url.Values{"match[]": {`{name=~"` + strings.Repeat("0123456789abcdef", 4) + strings.Repeat("|"+strings.Repeat("0123456789abcdef", 4), 1000) + `"}`}}, ""},
		{"100 match[]", "/api/v1/series", url.Values{"match[]": repeat(`{__name__=~".+"}`, 100)}, ""},
		{"a regex as an argument", "/api/v1/query_range", with(rng, "query", `label_replace(container_cpu_usage_seconds_total, "n", "$1", "name", "c(.*)")`), ""},
	} {
		code, r := post(tc.path, tc.v)
		switch {
		case tc.want == "" && (code != http.StatusOK || r.Status != "success"):
			t.Errorf("%s: HTTP %d %+v, want success", tc.name, code, r)
		case tc.want != "" && (code != http.StatusBadRequest || r.ErrorType != errBadData || !strings.Contains(r.Error, tc.want)):
			t.Errorf("%s: HTTP %d %+v, want 400 bad_data saying %q", tc.name, code, r, tc.want)
		}
	}
}
