// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestRunWithWebConfig runs the agent as the README's sidecar example
// does, with a web config that turns on TLS and basic auth: it says it
// serves https, answers 401 without the password, 200 with it, and 400 to
// plain HTTP.
func TestRunWithWebConfig(t *testing.T) {
	dir := t.TempDir()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), 10)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	writeFile(t, webCfg, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n", certFile, keyFile, hash), 0o600)

	p := startAgent(t, "--web.config.file", webCfg, "--ebpf", "disabled", "--collector.containers=false")
	if !strings.Contains(p.logs(), "crmon is serving https://"+p.addr+"/metrics") {
		t.Errorf("the agent does not say it serves https:\n%s", p.logs())
	}
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, der))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, tc := range []struct {
		url, password string
		want          int
	}{
		{"https://" + p.addr + "/metrics", "", http.StatusUnauthorized},
		{"https://" + p.addr + "/metrics", "wrong", http.StatusUnauthorized},
		{"https://" + p.addr + "/metrics", "s3cret", http.StatusOK},
		{"http://" + p.addr + "/metrics", "s3cret", http.StatusBadRequest},
		// The query API over the store is behind the same TLS and auth.
		{"https://" + p.addr + "/api/v1/query?query=up", "", http.StatusUnauthorized},
		{"https://" + p.addr + "/api/v1/query?query=vector(1)", "s3cret", http.StatusOK},
		{"https://" + p.addr + "/api/v1/report?from=0&to=1", "", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		if tc.password != "" {
			req.SetBasicAuth("prometheus", tc.password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", tc.url, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with password %q: %s, want %d", tc.url, tc.password, resp.Status, tc.want)
		}
	}

	// crmon top reads such an agent with the password in its URL and
	// the certificate to trust; it never prints the password.
	out, stderr, code := run(t, "top", "--once", "--url", "https://prometheus:s3cret@"+p.addr, "--tls.ca-file", certFile)
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, " cores") {
		t.Errorf("top --once over TLS with basic auth: exit %d\n%s%s", code, out, stderr)
	}
	for _, args := range [][]string{
		{"--url", "https://prometheus:wrong@" + p.addr, "--tls.ca-file", certFile},
		{"--url", "https://prometheus:s3cret@" + p.addr},
	} {
		out, stderr, code := run(t, append([]string{"top", "--once", "--timeout", "5s"}, args...)...)
		if code != 1 || strings.Contains(stderr+out, "s3cret") || strings.Contains(stderr+out, "wrong") {
			t.Errorf("top --once %v: exit %d, want 1 without the password in the message:\n%s%s", args, code, out, stderr)
		}
	}
}

func writeFile(t *testing.T, name string, b []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, b, perm); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
