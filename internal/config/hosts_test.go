// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckHosts(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.toml")
	body := `[[cleanroom.monitoring.alerting.alert_channels]]
name = "good"
type = "email"
smtp_host = "smtp.example.com"
from = "a@example.com"
to = ["b@example.com"]

[[cleanroom.monitoring.alerting.alert_channels]]
name = "typo"
type = "email"
smtp_host = "smtp.exmaple.invalid"
from = "a@example.com"
to = ["b@example.com"]

[[cleanroom.monitoring.alerting.alert_channels]]
name = "ip"
type = "email"
smtp_host = "192.0.2.1"
from = "a@example.com"
to = ["b@example.com"]
`
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	var asked []string
	err = cfg.CheckHosts(context.Background(), func(_ context.Context, h string) ([]string, error) {
		asked = append(asked, h)
		if h == "smtp.example.com" {
			return []string{"192.0.2.2"}, nil
		}
		return nil, errors.New("no such host")
	})
	want := f + `:11: smtp_host = "smtp.exmaple.invalid": it does not resolve (alert channel "typo"); check the name, or the resolver of this host`
	if err == nil || strings.TrimPrefix(err.Error(), "") != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if strings.Join(asked, ",") != "smtp.example.com,smtp.exmaple.invalid" {
		t.Errorf("looked up %v; an IP address needs no lookup", asked)
	}
}
