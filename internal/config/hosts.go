// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"context"
	"fmt"
	"net"
)

// CheckHosts looks up the host names the configuration sends to, which
// Validate does not (it never goes to the network): today the email
// channels' smtp_host. A name that does not resolve is an *Error at its
// line. lookup is net.Resolver.LookupHost's shape; ctx bounds it all.
func (c *Config) CheckHosts(ctx context.Context, lookup func(ctx context.Context, host string) ([]string, error)) error {
	p := &problems{src: c.src}
	for i, ch := range c.Monitoring.Alerting.AlertChannels {
		if ch.Type != ChannelEmail || ch.SMTPHost == "" || net.ParseIP(ch.SMTPHost) != nil {
			continue
		}
		if _, err := lookup(ctx, ch.SMTPHost); err != nil {
			cause := "it does not resolve"
			if ctx.Err() != nil {
				cause = "the lookup did not answer in time"
			}
			p.add(fmt.Sprintf("%s.alerting.alert_channels[%d].smtp_host", monitoringPath, i),
				"smtp_host = %q: %s (%s); check the name, or the resolver of this host", ch.SMTPHost, cause, entryName("alert channel", ch.Name, i))
		}
	}
	return p.err()
}
