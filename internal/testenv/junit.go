// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// JUnitSuite is one test suite as a JUnit consumer reads it.
type JUnitSuite struct {
	Name       string            `json:"name"`
	Tests      int               `json:"tests"`
	Failures   int               `json:"failures"`
	Errors     int               `json:"errors"`
	Skipped    int               `json:"skipped"`
	Properties map[string]string `json:"properties"`
	Cases      []JUnitCase       `json:"cases"`
}

// JUnitCase is one test case: Result is "passed", "failure", "error" or
// "skipped", Message the result's message.
type JUnitCase struct {
	Classname string `json:"classname"`
	Name      string `json:"name"`
	Result    string `json:"result"`
	Type      string `json:"type"`
	Message   string `json:"message"`
}

// junitparserScript reads a JUnit file with junitparser (Debian's
// python3-junitparser), as CI tooling in Python does, and prints what it
// understood as JSON.
const junitparserScript = `
import json, sys
from junitparser import JUnitXml, TestSuite, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
suites = [xml] if isinstance(xml, TestSuite) else list(xml)
out = []
for s in suites:
    cases = []
    for c in s:
        res = c.result
        if not isinstance(res, list):
            res = [res] if res is not None else []
        kind, typ, msg = "passed", "", ""
        for r in res:
            kind = {Failure: "failure", Error: "error", Skipped: "skipped"}.get(type(r), "other")
            typ, msg = r.type or "", r.message or ""
        cases.append({"classname": c.classname or "", "name": c.name, "result": kind, "type": typ, "message": msg})
    props = {p.name: p.value for p in s.properties()}
    out.append({"name": s.name, "tests": s.tests, "failures": s.failures, "errors": s.errors,
                "skipped": s.skipped, "properties": props, "cases": cases})
json.dump(out, sys.stdout)
`

// ParseJUnit reads the JUnit XML file path with junitparser, a JUnit
// consumer CI tooling uses.
func ParseJUnit(t testing.TB, path string) []JUnitSuite {
	t.Helper()
	py := RequireCommand(t, "/usr/bin/python3")
	if out, err := exec.Command(py, "-c", "import junitparser").CombinedOutput(); err != nil {
		Unavailable(t, "needs python3-junitparser (scripts/deps.sh installs it): %v: %s", err, out)
	}
	out, err := exec.Command(py, "-c", junitparserScript, path).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("junitparser cannot read %s: %v\n%s", path, err, stderr)
	}
	var suites []JUnitSuite
	if err := json.Unmarshal(out, &suites); err != nil {
		t.Fatalf("junitparser's output: %v\n%s", err, out)
	}
	return suites
}
