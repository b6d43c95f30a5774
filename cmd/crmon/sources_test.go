// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"flag"
	"log/slog"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/config"
)

// TestReloadRebuildsOnNewInterval: idle_refresh is kept as a number of
// ticks, so a reload that changes only collection_interval must rebuild
// the collectors, and one that changes nothing must keep them.
func TestReloadRebuildsOnNewInterval(t *testing.T) {
	cmd := runCommand()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	for _, f := range cmd.Flags {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	// The containers collector is not what this test is about, and it
	// would reach the Docker engine, which -short leaves alone.
	if err := fs.Parse([]string{"--ebpf", "disabled", "--collector.containers=false"}); err != nil {
		t.Fatal(err)
	}
	c := cli.NewContext(newApp(), fs, nil)
	cfg, err := loadConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Monitoring.EBPF.Mode = config.EBPFDisabled
	cfg.Monitoring.Containers.Enabled = false
	cfg.Monitoring.CollectionInterval = config.Duration(time.Second)
	src, err := newSources(c, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if old, err := src.Reload(cfg); err != nil || old != nil {
		t.Fatalf("reload of the same config: replaced %d collectors, err %v; want none", len(old), err)
	}
	cfg.Monitoring.CollectionInterval = config.Duration(15 * time.Second)
	old, err := src.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if old == nil {
		t.Fatal("a new collection_interval kept the collectors built for the old one")
	}
	closeAll(old)
}
