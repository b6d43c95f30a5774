// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const secretsDoc = `[[cleanroom.monitoring.alerting.alert_channels]]
name = "mail"
type = "email"
smtp_host = "smtp.example.com"
from = "crmon@example.com"
to = ["oncall@example.com"]
username = "crmon"
password_file = "secrets/smtp"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "slack"
type = "slack"
webhook_url_env = "CRMON_SLACK_URL"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url_file = "/ABS/hook-url"
headers = { X-Plain = "plain-header-value" }
headers_env = { Authorization = "CRMON_HOOK_AUTH" }
headers_file = { X-Api-Key = "secrets/api-key" }

[[cleanroom.monitoring.exporters]]
name = "influx"
exporter_type = "InfluxDB"
endpoint = "http://influxdb:8086"
org = "ci"
bucket = "crmon"
credentials = { token_env = "CRMON_INFLUX_TOKEN" }

[[cleanroom.monitoring.exporters]]
name = "prom"
exporter_type = "Prometheus"
endpoint = "http://prometheus:9090/api/v1/write"
credentials = { username = "crmon", password = "inline-remote-write-password" }
`

// secretValues are every secret secretsDoc's config holds once loaded.
var secretValues = []string{
	"smtp-password-from-file",
	"https://hooks.slack.com/services/T0/B0/slack-from-env",
	"https://ci.example.com/hook?token=hook-url-from-file",
	"plain-header-value",
	"Bearer auth-header-from-env",
	"api-key-from-file",
	"influx-token-from-env",
	"inline-remote-write-password",
}

func loadSecretsDoc(t *testing.T) *Config {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "secrets/smtp", "smtp-password-from-file\n")
	writeFile(t, dir, "secrets/api-key", "api-key-from-file\r\n")
	abs := writeFile(t, dir, "abs/hook-url", "https://ci.example.com/hook?token=hook-url-from-file")
	doc := strings.Replace(secretsDoc, "/ABS/hook-url", abs, 1)
	path := writeFile(t, dir, "crmon.toml", doc)
	env := envOf(map[string]string{
		"CRMON_SLACK_URL":    "https://hooks.slack.com/services/T0/B0/slack-from-env",
		"CRMON_HOOK_AUTH":    "Bearer auth-header-from-env",
		"CRMON_INFLUX_TOKEN": "influx-token-from-env",
	})
	c, err := Parse(path, []byte(doc), ParseOptions{Dir: dir, LookupEnv: env})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestSecretsFromFileAndEnv(t *testing.T) {
	c := loadSecretsDoc(t)
	ch := c.Monitoring.Alerting.AlertChannels
	ex := c.Monitoring.Exporters
	got := map[string]string{
		"mail.password":              ch[0].Password.Reveal(),
		"slack.webhook_url":          ch[1].WebhookURL.Reveal(),
		"hook.url":                   ch[2].URL.Reveal(),
		"hook.headers.X-Plain":       ch[2].Headers["X-Plain"].Reveal(),
		"hook.headers.Authorization": ch[2].Headers["Authorization"].Reveal(),
		"hook.headers.X-Api-Key":     ch[2].Headers["X-Api-Key"].Reveal(),
		"influx.token":               ex[0].Credentials.Token.Reveal(),
		"prom.password":              ex[1].Credentials.Password.Reveal(),
	}
	want := map[string]string{
		// One trailing newline (LF or CRLF) is trimmed, as editors add it.
		"mail.password":              "smtp-password-from-file",
		"slack.webhook_url":          "https://hooks.slack.com/services/T0/B0/slack-from-env",
		"hook.url":                   "https://ci.example.com/hook?token=hook-url-from-file",
		"hook.headers.X-Plain":       "plain-header-value",
		"hook.headers.Authorization": "Bearer auth-header-from-env",
		"hook.headers.X-Api-Key":     "api-key-from-file",
		"influx.token":               "influx-token-from-env",
		"prom.password":              "inline-remote-write-password",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
}

func TestSecretErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "empty", "\n")
	head := "[[cleanroom.monitoring.exporters]]\nname = \"p\"\nexporter_type = \"Prometheus\"\nendpoint = \"http://p:9090/api/v1/write\"\n"
	for _, c := range []struct {
		name, doc string
		env       map[string]string
		want      string
	}{
		{"both", head + `credentials = { username = "u", password = "p", password_env = "PW" }`, map[string]string{"PW": "x"},
			`t.toml:5: password and password_env are both set; they are alternatives, keep one`},
		{"all three", head + `credentials = { username = "u", password = "p", password_env = "PW", password_file = "empty" }`, map[string]string{"PW": "x"},
			`t.toml:5: password and password_file and password_env are all set; they are alternatives, keep one`},
		{"unset env", head + `credentials = { token_env = "NOPE" }`, nil,
			`t.toml:5: token_env = "NOPE": the environment variable NOPE is not set or is empty`},
		{"empty env", head + `credentials = { token_env = "EMPTY" }`, map[string]string{"EMPTY": ""},
			`t.toml:5: token_env = "EMPTY": the environment variable EMPTY is not set or is empty`},
		{"missing file", head + `credentials = { token_file = "nope" }`, nil,
			`t.toml:5: token_file = "nope": cannot read the secret: no such file or directory`},
		{"empty file", head + `credentials = { token_file = "empty" }`, nil,
			`t.toml:5: token_file = "empty": the file is empty`},
		{"header twice", head + "headers = { A = \"x\" }\nheaders_env = { A = \"A\" }", map[string]string{"A": "y"},
			`t.toml:5: headers.A and headers_env.A are both set; they are alternatives, keep one`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(c.doc), ParseOptions{Dir: dir, LookupEnv: envOf(c.env)})
			if err == nil {
				t.Fatal("Parse = nil error")
			}
			if diff := cmp.Diff(c.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// No way of printing a loaded config shows a secret.
func TestSecretsNeverPrinted(t *testing.T) {
	c := loadSecretsDoc(t)
	var eff bytes.Buffer
	if err := c.WriteEffective(&eff); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"WriteEffective": eff.String(),
		"json":           string(js),
		"%v":             fmt.Sprintf("%v", c),
		"%+v":            fmt.Sprintf("%+v", *c),
		"%#v":            fmt.Sprintf("%#v", *c),
		"%s":             fmt.Sprintf("%s", c.Monitoring.Exporters[1].Credentials.Password), //lint:ignore S1025 each verb is what is checked
		"%q":             fmt.Sprintf("%q", c.Monitoring.Exporters[1].Credentials.Password),
		"%x":             fmt.Sprintf("%x", c.Monitoring.Exporters[1].Credentials.Password),
	}
	for how, out := range outputs {
		for _, s := range secretValues {
			if strings.Contains(out, s) || strings.Contains(out, fmt.Sprintf("%x", s)) {
				t.Errorf("%s shows the secret %q:\n%s", how, s, out)
			}
		}
	}
	// The effective config says where each secret comes from instead.
	for _, want := range []string{
		`password_file = 'secrets/smtp'`,
		`webhook_url_env = 'CRMON_SLACK_URL'`,
		`X-Plain = '<secret>'`,
		`token_env = 'CRMON_INFLUX_TOKEN'`,
		`password = '<secret>'`,
	} {
		if !strings.Contains(eff.String(), want) {
			t.Errorf("WriteEffective lacks %q:\n%s", want, eff.String())
		}
	}
	// Masking worked on a copy.
	if got := c.Monitoring.Exporters[1].Credentials.Password.Reveal(); got != "inline-remote-write-password" {
		t.Errorf("WriteEffective changed the config: password = %q", got)
	}
}

// Errors about a secret URL do not show it.
func TestSecretsNotInErrors(t *testing.T) {
	doc := `[[cleanroom.monitoring.alerting.alert_channels]]
name = "s"
type = "slack"
webhook_url = "hooks.slack.com/services/T0/B0/very-secret-token"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "w"
type = "webhook"
url = "ftp://user:very-secret-password@example.com/"
`
	_, err := Parse("t.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	if err == nil {
		t.Fatal("Parse = nil error")
	}
	if strings.Contains(err.Error(), "very-secret") {
		t.Errorf("the error shows a secret:\n%v", err)
	}
	if n := len(Problems(err)); n != 2 {
		t.Errorf("got %d problems, want 2:\n%v", n, err)
	}
}

func TestSecretString(t *testing.T) {
	for _, c := range []struct {
		s    Secret
		want string
	}{
		{"", ""},
		{"x", "<secret>"},
	} {
		if got := c.s.String(); got != c.want {
			t.Errorf("Secret(%d bytes).String() = %q, want %q", len(c.s), got, c.want)
		}
		if got := fmt.Sprintf("%#v", c.s); got != fmt.Sprintf("%q", c.want) {
			t.Errorf("%%#v = %s", got)
		}
	}
}

// TestErrorsHideSecrets checks that an error about a secret's line never
// quotes its value: not when the line does not parse, not when the value
// has the wrong type, not when the key is given twice.
func TestErrorsHideSecrets(t *testing.T) {
	const ch = "[[cleanroom.monitoring.alerting.alert_channels]]\nname = \"s\"\ntype = \"webhook\"\n"
	const ex = "[[cleanroom.monitoring.exporters]]\nname = \"p\"\nexporter_type = \"Prometheus\"\nendpoint = \"http://x/\"\n"
	for _, tc := range []struct {
		name, doc string
		line      int
	}{
		{"unterminated string", ch + "url = \"https://hooks.example.com/s3cr3t\n", 4},
		{"unquoted", ch + "url = s3cr3t\n", 4},
		{"wrong type", ch + "password = 13371337\n", 4},
		{"list", ch + "password = [\"s3cr3t\"]\n", 4},
		{"header unquoted", ch + "headers = { Authorization = Bearer-s3cr3t }\n", 4},
		{"duplicate", ch + "password = \"s3cr3t-1\"\npassword = \"s3cr3t-2\"\n", 5},
		{"inline credentials", ex + "credentials = { password = \"s3cr3t\" \n", 5},
		{"quoted key", ch + "\"password\" = s3cr3t\n", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tc.doc), ParseOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "13371337") {
				t.Errorf("the error shows the secret:\n%s", msg)
			}
			if !strings.Contains(msg, fmt.Sprintf("c.toml:%d: ", tc.line)) {
				t.Errorf("the error does not name line %d:\n%s", tc.line, msg)
			}
		})
	}
}

// TestEndpointPasswordHidden checks that a password in an exporter's
// endpoint URL shows neither in a validation error nor in the effective
// configuration, which still loads back.
func TestEndpointPasswordHidden(t *testing.T) {
	const head = "[[cleanroom.monitoring.exporters]]\nname = \"p\"\nexporter_type = \"Prometheus\"\n"
	_, err := Parse("c.toml", []byte(head+"endpoint = \"ftp://crmon:s3cr3t@prom:9090/\"\n"), ParseOptions{})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "ftp://xxxxx@prom:9090/") {
		t.Errorf("error for a bad endpoint with a password: %v", err)
	}

	c, err := Parse("c.toml", []byte(head+"endpoint = \"https://crmon:s3cr3t@prom:9090/api/v1/write\"\n"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := c.WriteEffective(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "s3cr3t") {
		t.Errorf("effective configuration shows the endpoint's password:\n%s", out.String())
	}
	back, err := Parse("effective.toml", out.Bytes(), ParseOptions{})
	if err != nil {
		t.Fatalf("effective configuration does not load back: %v", err)
	}
	if got, want := back.Monitoring.Exporters[0].Endpoint, "https://xxxxx@prom:9090/api/v1/write"; got != want {
		t.Errorf("endpoint loaded back = %q, want %q", got, want)
	}
	if got := c.Monitoring.Exporters[0].Endpoint; !strings.Contains(got, "s3cr3t") {
		t.Errorf("Masked changed the configuration itself: endpoint %q", got)
	}
}

// A secret whose _env or _file form is set but cannot be read is one
// problem, at that key; the secret is not also reported missing.
func TestUnreadableSecretIsOneProblem(t *testing.T) {
	doc := `[[cleanroom.monitoring.alerting.alert_channels]]
name = "slack"
type = "slack"
webhook_url_env = "SLACK_HOOK"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "mail"
type = "email"
smtp_host = "smtp.example.com"
from = "crmon@example.com"
to = ["oncall@example.com"]
username = "crmon"
password_file = "nope"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url = "https://ci.example.com/hook"
url_env = "HOOK_URL"
`
	_, err := Parse("t.toml", []byte(doc), ParseOptions{Dir: t.TempDir(), LookupEnv: noEnv})
	want := []string{
		`t.toml:4: webhook_url_env = "SLACK_HOOK": the environment variable SLACK_HOOK is not set or is empty`,
		`t.toml:13: password_file = "nope": cannot read the secret: no such file or directory`,
		`t.toml:18: url and url_env are both set; they are alternatives, keep one`,
	}
	if err == nil {
		t.Fatal("Parse = nil error")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

// An exporter's endpoint may carry an API key in its query: the effective
// configuration and the errors about the endpoint show the parameters'
// names, not their values.
func TestEndpointQueryNotPrinted(t *testing.T) {
	doc := `[[cleanroom.monitoring.exporters]]
name = "ok"
exporter_type = "Custom"
endpoint = "https://user:pw-1a2b@metrics.example.com/ingest?api_key=key-3c4d&tenant=ci#frag"

[[cleanroom.monitoring.exporters]]
name = "bad"
exporter_type = "Custom"
endpoint = "ftp://metrics.example.com/ingest?api_key=key-5e6f"
`
	_, err := Parse("t.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	if err == nil || strings.Contains(err.Error(), "key-5e6f") || !strings.Contains(err.Error(), "api_key=xxxxx") {
		t.Errorf("the error should name the parameter, not its value:\n%v", err)
	}
	c, err := Parse("t.toml", []byte(doc[:strings.Index(doc, "\n\n")]), ParseOptions{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	var eff bytes.Buffer
	if err := c.WriteEffective(&eff); err != nil {
		t.Fatal(err)
	}
	want := `endpoint = 'https://xxxxx@metrics.example.com/ingest?api_key=xxxxx&tenant=xxxxx#frag'`
	if !strings.Contains(eff.String(), want) || strings.Contains(eff.String(), "key-3c4d") || strings.Contains(eff.String(), "pw-1a2b") {
		t.Errorf("WriteEffective should show %s:\n%s", want, eff.String())
	}
	if got := c.Monitoring.Exporters[0].Endpoint; !strings.Contains(got, "key-3c4d") {
		t.Errorf("masking changed the config: endpoint = %q", got)
	}
}
