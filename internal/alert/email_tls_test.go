// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a TLS config that trusts only it.
func selfSigned(t *testing.T) (cert, key string, trust *tls.Config) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// TestEmailTLS: a server that requires STARTTLS gets it, one that speaks
// TLS from the first byte gets implicit TLS, both with a login; and a
// certificate the client does not trust fails.
func TestEmailTLS(t *testing.T) {
	cert, key, trust := selfSigned(t)
	for _, tc := range []struct {
		mode     string
		implicit bool
	}{{"--smtp-require-starttls", false}, {"--smtp-require-tls", true}} {
		t.Run(tc.mode, func(t *testing.T) {
			smtp, api := testenv.Mailpit(t, "--smtp-tls-cert", cert, "--smtp-tls-key", key, tc.mode)
			m := mailpit{smtp: smtp, api: api}
			e := newEmail(config.AlertChannel{Name: "mail", Type: config.ChannelEmail, SMTPHost: "127.0.0.1", SMTPPort: testenv.Port(t, smtp),
				From: "crmon@example.com", To: []string{"a@example.com"}, Username: "crmon", Password: "s3cret"})
			e.implicitTLS, e.tlsConfig = tc.implicit, trust
			firing, _ := firingAndResolved()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.Send(ctx, firing); err != nil {
				t.Fatal(err)
			}
			if msgs := m.messages(t); len(msgs) != 1 || msgs[0].Subject != Subject(&firing.Alert) {
				t.Errorf("mails %+v", msgs)
			}
			// Without the certificate's root: refused.
			e.tlsConfig = &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
			if err := e.Send(ctx, firing); err == nil {
				t.Error("sent over TLS to a server whose certificate is not trusted")
			}
		})
	}
}

// TestEmailBoundsWhatItReads: an SMTP server that answers with an endless
// line costs a bounded read and an error, not memory until the timeout.
func TestEmailBoundsWhatItReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = 'x'
		}
		_, _ = c.Write([]byte("220 "))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	e := newEmail(config.AlertChannel{Name: "mail", Type: config.ChannelEmail, SMTPHost: "127.0.0.1", SMTPPort: testenv.Port(t, ln.Addr().String()),
		From: "crmon@example.com", To: []string{"a@example.com"}})
	firing, _ := firingAndResolved()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = e.Send(ctx, firing)
	if err == nil || !errors.Is(err, errSMTPTooLong) && !strings.Contains(err.Error(), errSMTPTooLong.Error()) {
		t.Errorf("Send to an endless server: %v, want %v", err, errSMTPTooLong)
	}
	if ctx.Err() != nil {
		t.Error("stopped by the deadline, not by the bound")
	}
}
