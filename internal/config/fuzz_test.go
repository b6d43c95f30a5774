// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParse feeds Parse arbitrary documents: it must never panic, every
// problem it reports must name the file, and whatever it accepts must be
// valid and print as TOML that loads again.
//
//	go test ./internal/config -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"*.toml", "bad/*.toml"} {
		files, err := filepath.Glob(filepath.Join(testdata, pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("a = 1s\n[[b]]\n[b]\nc = [1m, {d = 2h}]\n"))
	f.Add([]byte(`x = """30s` + "\n"))
	f.Add([]byte("[cleanroom.monitoring]\nexporters = [{ name = \"a\", credentials = { token_env = \"X\" } }]\n"))
	f.Add([]byte("[cleanroom.resource_limits]\ncpu_seconds = \"1.5s\"\npeak_memory_bytes = \"32MiB\"\n[[cleanroom.resource_limits.containers]]\nname = \"db-*\"\nnet_rx_bytes = 7\n"))

	f.Add([]byte("\uFEFF[cleanroom.monitoring]\nretention_period = true\n[cleanroom.monitoring.containers]\nidle_refresh = true\n"))
	f.Add([]byte("[cleanroom.monitoring.ebpf]\nmode = \"\\u001b[2J\"\n\"k\\u001b\" = 1\nx = " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n"))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc []byte) {
		// Secrets only from dir and an empty environment: the fuzzer must
		// not read the machine's files or variables.
		opts := ParseOptions{Dir: dir, LookupEnv: noEnv}
		cfg, err := Parse("fuzz.toml", doc, opts)
		if err != nil {
			for _, e := range Problems(err) {
				if e.File != "fuzz.toml" {
					t.Errorf("problem without the file: %v", e)
				}
				// One printable line of bounded length, whatever the
				// document holds.
				msg := e.Error()
				if utf8.RuneCountInString(msg) > maxMessage+len("… (cut)") {
					t.Errorf("a problem of %d characters", utf8.RuneCountInString(msg))
				}
				// Nor Go's names for types, unless the document wrote them.
				for _, goism := range []string{"map[", "interface {}", "struct field", "int64", "float64"} {
					if strings.Contains(e.Message, goism) && !bytes.Contains(doc, []byte(goism)) {
						t.Errorf("Go's types in %q", msg)
					}
				}
				for _, r := range msg {
					if !unicode.IsPrint(r) {
						t.Errorf("problem with %U: %q", r, msg)
						break
					}
				}
			}
			if len(Problems(err)) == 0 {
				t.Errorf("error is not a list of *Error: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
		var out bytes.Buffer
		if err := cfg.WriteEffective(&out); err != nil {
			t.Fatalf("WriteEffective: %v", err)
		}
		// A masked secret stands in for a URL when loaded back.
		back := bytes.ReplaceAll(out.Bytes(), []byte("'<secret>'"), []byte("'https://masked.invalid/'"))
		if _, err := Parse("effective.toml", back, opts); err != nil && !strings.Contains(err.Error(), "_file") && !strings.Contains(err.Error(), "_env") {
			t.Fatalf("the effective config of an accepted file does not load: %v\n%s", err, out.String())
		}
	})
}
