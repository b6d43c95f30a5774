// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/config"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with crmon's TOML configuration",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a config file and print the effective configuration, secrets masked",
			ArgsUsage: "FILE",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("want exactly one FILE: crmon config check FILE")
				}
				cfg, err := config.Load(c.Args().First())
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "%s: valid\n", c.Args().First())
				return cfg.WriteEffective(c.App.Writer)
			},
		}},
	}
}
