// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Mailpit starts mailpit (an SMTP server whose HTTP API reads the mails
// back) on loopback for the test, accepting any login without TLS, and
// returns its SMTP and API addresses. args are more of mailpit's flags,
// e.g. a TLS certificate. make deps installs it.
func Mailpit(t testing.TB, args ...string) (smtp, api string) {
	t.Helper()
	RequireLong(t, "a mail server")
	bin := RequireGoTool(t, "mailpit")
	smtp, api = FreePort(t), FreePort(t)
	base := []string{"--smtp", smtp, "--listen", api, "--database", filepath.Join(t.TempDir(), "mail.db"),
		"--smtp-auth-accept-any", "--disable-version-check"}
	if !slices.Contains(args, "--smtp-tls-cert") {
		// Without TLS, a login is accepted in the clear (loopback only).
		base = append(base, "--smtp-auth-allow-insecure")
	}
	StartServer(t, "http://"+api+"/readyz", bin, append(base, args...)...)
	return smtp, api
}

// Alertmanager starts Debian's prometheus-alertmanager on loopback for
// the test, with one receiver that sends nowhere, and returns its address.
func Alertmanager(t testing.TB) string {
	t.Helper()
	RequireLong(t, "Alertmanager")
	bin := RequireCommand(t, "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n  - name: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreePort(t)
	StartServer(t, "http://"+addr+"/-/ready", bin, "--config.file", cfg, "--storage.path", dir,
		"--web.listen-address", addr, "--cluster.listen-address", "")
	return addr
}
