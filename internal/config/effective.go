// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"fmt"
	"io"
	"maps"
	"slices"

	toml "github.com/pelletier/go-toml/v2"
)

// Clone returns a deep copy of c, so that a reload can build on the running
// configuration without touching it.
func (c *Config) Clone() *Config {
	n := *c
	m := &n.Monitoring
	m.Exporters = slices.Clone(m.Exporters)
	for i := range m.Exporters {
		e := &m.Exporters[i]
		e.Headers = maps.Clone(e.Headers)
		e.HeadersFile = maps.Clone(e.HeadersFile)
		e.HeadersEnv = maps.Clone(e.HeadersEnv)
	}
	m.Alerting.AlertChannels = slices.Clone(m.Alerting.AlertChannels)
	for i := range m.Alerting.AlertChannels {
		ch := &m.Alerting.AlertChannels[i]
		ch.To = slices.Clone(ch.To)
		ch.Headers = maps.Clone(ch.Headers)
		ch.HeadersFile = maps.Clone(ch.HeadersFile)
		ch.HeadersEnv = maps.Clone(ch.HeadersEnv)
	}
	m.Alerting.AlertRules = slices.Clone(m.Alerting.AlertRules)
	for i := range m.Alerting.AlertRules {
		r := &m.Alerting.AlertRules[i]
		r.Channels = slices.Clone(r.Channels)
		r.Labels = maps.Clone(r.Labels)
	}
	m.EBPF.Include = slices.Clone(m.EBPF.Include)
	m.EBPF.Exclude = slices.Clone(m.EBPF.Exclude)
	m.Containers.ContainerLabels = slices.Clone(m.Containers.ContainerLabels)
	m.Containers.EnableMetrics = slices.Clone(m.Containers.EnableMetrics)
	m.Containers.Include = slices.Clone(m.Containers.Include)
	m.Containers.Exclude = slices.Clone(m.Containers.Exclude)
	n.ResourceLimits.Limits = slices.Clone(n.ResourceLimits.Limits)
	return &n
}

// Masked returns a copy of c fit to print: a secret read from a file or
// the environment shows as its <key>_file or <key>_env only, and every
// other secret's value is replaced by "<secret>". (Secret masks itself in
// fmt and JSON, but TOML encoders write string types as they are.)
func (c *Config) Masked() *Config {
	n := c.Clone()
	for i := range n.Monitoring.Exporters {
		e := &n.Monitoring.Exporters[i]
		e.Endpoint = redactURL(e.Endpoint)
	}
	refs, hdrs := n.secrets()
	for _, r := range refs {
		switch {
		case *r.file != "" || *r.env != "":
			*r.value = ""
		case *r.value != "":
			*r.value = masked
		}
	}
	for _, h := range hdrs {
		for k := range *h.values {
			_, f := h.file[k]
			_, e := h.env[k]
			if f || e {
				delete(*h.values, k)
			} else {
				(*h.values)[k] = masked
			}
		}
		if len(*h.values) == 0 {
			*h.values = nil
		}
	}
	return n
}

// WriteEffective writes the configuration as TOML, every key with its
// value, secrets masked: what `crmon config check` prints. Apart from the
// masked secrets it loads back to the same configuration.
func (c *Config) WriteEffective(w io.Writer) error {
	if _, err := io.WriteString(w, "# crmon effective configuration; secrets are masked\n"); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	// [cleanroom.resource_limits] has pkg/session's keys, not fields, so
	// it is written from a map; list every section of Config here.
	m := c.Masked()
	var doc struct {
		Cleanroom struct {
			Monitoring     Monitoring     `toml:"monitoring"`
			ResourceLimits map[string]any `toml:"resource_limits"`
		} `toml:"cleanroom"`
	}
	doc.Cleanroom.Monitoring = m.Monitoring
	doc.Cleanroom.ResourceLimits = m.ResourceLimits.limitsTable()
	enc := toml.NewEncoder(w)
	enc.SetIndentTables(true)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	return nil
}
