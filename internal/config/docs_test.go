// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/crmon-dev/crmon/pkg/session"
)

// README.md documents every key and carries full.toml as it is.
func TestDocs(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(testdata + "/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```toml\n"+string(full)+"```") {
		t.Error("README.md does not carry testdata/config/full.toml as it is")
	}
	var walk func(reflect.Type, string)
	walk = func(t0 reflect.Type, path string) {
		for t0.Kind() == reflect.Slice || t0.Kind() == reflect.Pointer {
			t0 = t0.Elem()
		}
		if t0.Kind() != reflect.Struct || t0 == reflect.TypeFor[Duration]() {
			return
		}
		for i := range t0.NumField() {
			f := t0.Field(i)
			name := tomlName(f)
			if name == "" {
				continue
			}
			// <key>_file and <key>_env are documented once, for all secrets.
			// A table is documented by its header or as a key.
			documented := strings.Contains(string(doc), "`"+name+"`") ||
				strings.Contains(string(doc), "`["+join(path, name)+"]`") ||
				strings.Contains(string(doc), "`[["+join(path, name)+"]]`")
			if !strings.HasSuffix(name, "_file") && !strings.HasSuffix(name, "_env") && !documented && path != "" {
				t.Errorf("README.md does not document %s", join(path, name))
			}
			walk(f.Type, join(path, name))
		}
	}
	walk(reflect.TypeFor[file](), "")

	// [cleanroom.resource_limits] has pkg/session's keys.
	for _, k := range append(session.LimitNames(), "name") {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("README.md does not document %s.%s in a table row", limitsPath, k)
		}
	}
	if !strings.Contains(string(doc), "`[["+containersPath+"]]`") {
		t.Errorf("README.md does not document [[%s]]", containersPath)
	}
}
