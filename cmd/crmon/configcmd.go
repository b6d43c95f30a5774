// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/config"
)

// hostCheckTimeout bounds config check's lookups of the hosts the config
// names.
const hostCheckTimeout = 5 * time.Second

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with crmon's TOML configuration",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a config file (and that its SMTP hosts resolve) and print the effective configuration, secrets masked",
			ArgsUsage: "FILE",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("want exactly one FILE: crmon config check FILE")
				}
				cfg, err := config.Load(c.Args().First())
				if err != nil {
					return err
				}
				// The names the agent will send to must resolve; a
				// resolver that does not answer is bounded too.
				ctx, cancel := context.WithTimeout(c.Context, hostCheckTimeout)
				defer cancel()
				if err := cfg.CheckHosts(ctx, net.DefaultResolver.LookupHost); err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "%s: valid\n", c.Args().First())
				return cfg.WriteEffective(c.App.Writer)
			},
		}},
	}
}
