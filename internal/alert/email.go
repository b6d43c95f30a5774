// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/crmon-dev/crmon/internal/config"
)

// email sends one mail per notification to each recipient over SMTP:
// implicit TLS on port 465, STARTTLS elsewhere. STARTTLS is required
// unless the server is on loopback (a local relay), where it is used when
// offered.
type email struct {
	name     string
	host     string
	port     int
	from     string
	to       []string
	username string
	password string
	// implicitTLS is TLS from the first byte (port 465), not STARTTLS.
	implicitTLS bool
	// tlsConfig, when set, replaces the system's roots (tests).
	tlsConfig *tls.Config
}

func newEmail(c config.AlertChannel) *email {
	return &email{name: c.Name, host: c.SMTPHost, port: c.SMTPPort, from: c.From, to: c.To, username: c.Username, password: c.Password.Reveal(),
		implicitTLS: c.SMTPPort == 465}
}

func (e *email) Name() string { return e.name }
func (e *email) Type() string { return config.ChannelEmail }

// Subject is the mail's subject: ADR-006's "Resource Alert", saying
// whether the alert fires or is resolved.
func Subject(a *Alert) string {
	return fmt.Sprintf("[%s] Resource Alert: %s", strings.ToUpper(status(a)), a.Message)
}

// Body is ADR-006's mail body, with the alert's labels and times.
func Body(a *Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Resource Alert: %s\nSeverity: %s\nResource: %s\nValue: %s\nThreshold: %s\nTime: %s\n",
		a.Message, a.Severity, a.Resource, num(a.Value), num(a.Threshold), a.Timestamp.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "State: %s\nAlert: %s\nStarted: %s\n", status(a), a.Name, a.StartsAt.UTC().Format(time.RFC3339))
	if a.State == StateResolved {
		fmt.Fprintf(&b, "Resolved: %s\n", a.EndsAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "Labels: %s\n", strings.TrimSuffix(fingerprint(a.Labels), ","))
	return b.String()
}

// maxSMTPBytes bounds what crmon reads from an SMTP server on one
// connection: its replies to a few commands are a few hundred bytes.
const maxSMTPBytes = 1 << 20

var errSMTPTooLong = errors.New("the SMTP server sent more than 1 MiB")

// limitedConn is a connection that reads at most left bytes more.
type limitedConn struct {
	net.Conn
	left int64
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errSMTPTooLong
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

// dial connects with a bound on what is read, under TLS (implicit TLS)
// and STARTTLS alike, since both wrap this connection.
func (e *email) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: conn, left: maxSMTPBytes}
	if !e.implicitTLS {
		return lc, nil
	}
	tc := tls.Client(lc, e.tls())
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

func (e *email) tls() *tls.Config {
	if e.tlsConfig != nil {
		return e.tlsConfig
	}
	return &tls.Config{ServerName: e.host, MinVersion: tls.VersionTLS12}
}

// authMechs are the login mechanisms crmon offers, best first. PLAIN and
// LOGIN refuse to send the password without TLS, except to a server on
// loopback.
var authMechs = []mail.SMTPAuthType{mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1, mail.SMTPAuthCramMD5, mail.SMTPAuthPlain, mail.SMTPAuthLogin}

func (e *email) client(ctx context.Context) (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(e.port), mail.WithDialContextFunc(e.dial), mail.WithTLSConfig(e.tls())}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, mail.WithTimeout(time.Until(dl)))
	}
	switch {
	case e.implicitTLS:
		// dial speaks TLS; WithSSL keeps go-mail from asking STARTTLS.
		opts = append(opts, mail.WithSSL())
	case isLoopback(e.host):
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if e.username != "" {
		opts = append(opts, mail.WithOpportunisticSMTPAuth(authMechs...), mail.WithUsername(e.username), mail.WithPassword(e.password))
	}
	return mail.NewClient(e.host, opts...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (e *email) Send(ctx context.Context, n Notification) error {
	a := &n.Alert
	msgs := make([]*mail.Msg, 0, len(e.to))
	for _, to := range e.to {
		m := mail.NewMsg()
		if err := m.From(e.from); err != nil {
			return permanent{fmt.Errorf("from: %w", err)}
		}
		if err := m.To(to); err != nil {
			return permanent{fmt.Errorf("to: %w", err)}
		}
		m.Subject(Subject(a))
		m.SetDate()
		m.SetMessageID()
		m.SetBodyString(mail.TypeTextPlain, Body(a))
		msgs = append(msgs, m)
	}
	c, err := e.client(ctx)
	if err != nil {
		return permanent{err}
	}
	if err := c.DialAndSendWithContext(ctx, msgs...); err != nil {
		// go-mail's errors name the server and the SMTP reply, never
		// the password.
		return fmt.Errorf("SMTP %s:%d: %w", e.host, e.port, err)
	}
	return nil
}
