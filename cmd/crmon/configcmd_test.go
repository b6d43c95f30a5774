// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckInlineSecrets: crmon config check accepts secrets
// written in the file, as every secret key does, but warns about each
// one by its key, says when others can read the file, and prints none of
// their values, the endpoint's user info and query included; secrets
// from _file and _env are not warned about.
func TestConfigCheckInlineSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("FILE-TOKEN-91b2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `[[cleanroom.monitoring.exporters]]
name = "rw"
exporter_type = "Prometheus"
endpoint = "http://rw-user:URL-PASSWORD-3c9d@localhost:9090/api/v1/write?api_key=URL-KEY-77e0"
headers = { X-Scope-OrgID = "tenant-a", X-Api-Key = "HEADER-KEY-1f2e" }
[cleanroom.monitoring.exporters.credentials]
username = "crmon"
password = "INLINE-PASSWORD-5a6b"

[[cleanroom.monitoring.exporters]]
name = "influx"
exporter_type = "InfluxDB"
endpoint = "http://localhost:8086"
org = "ci"
bucket = "crmon"
[cleanroom.monitoring.exporters.credentials]
token_file = "token"
`
	for _, mode := range []os.FileMode{0o644, 0o600} {
		f := filepath.Join(dir, "crmon.toml")
		if err := os.WriteFile(f, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(crmonBinary(t), "config", "check", f).CombinedOutput()
		if err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		s := string(out)
		for _, key := range []string{
			"cleanroom.monitoring.exporters[0].credentials.password",
			"cleanroom.monitoring.exporters[0].headers.X-Api-Key",
			"cleanroom.monitoring.exporters[0].endpoint",
		} {
			if !strings.Contains(s, key) {
				t.Errorf("mode %04o: no warning naming %s:\n%s", mode, key, s)
			}
		}
		for _, not := range []string{"X-Scope-OrgID,", "exporters[1].credentials.token", "INLINE-PASSWORD-5a6b", "URL-PASSWORD-3c9d", "URL-KEY-77e0", "HEADER-KEY-1f2e", "FILE-TOKEN-91b2"} {
			if strings.Contains(s, not) {
				t.Errorf("mode %04o: the output holds %q:\n%s", mode, not, s)
			}
		}
		readable := strings.Contains(s, "readable by others (mode 0644)")
		if readable != (mode == 0o644) {
			t.Errorf("mode %04o: says the file is readable by others: %v:\n%s", mode, readable, s)
		}
	}
}
