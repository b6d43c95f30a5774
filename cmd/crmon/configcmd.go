// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
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
				if w := inlineSecretsWarning(c.Args().First(), cfg); w != "" {
					fmt.Fprintf(c.App.ErrWriter, "%s: warning: %s\n", c.Args().First(), w)
				}
				return cfg.WriteEffective(c.App.Writer)
			},
		}},
	}
}

// inlineSecretsWarning says which secrets the config file at path holds
// as they are, and how to move them out; "" when it holds none. Inline
// secrets are accepted, as for every secret key, but a file that holds
// them must be readable by crmon's user only.
func inlineSecretsWarning(path string, cfg *config.Config) string {
	keys := cfg.InlineSecrets()
	if len(keys) == 0 {
		return ""
	}
	how := "move them to <key>_file or <key>_env (endpoints: credentials and headers), or keep the file readable by crmon's user only"
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		how = fmt.Sprintf("the file is readable by others (mode %04o): move them to <key>_file or <key>_env (endpoints: credentials and headers), or chmod 600 it", fi.Mode().Perm())
	}
	return fmt.Sprintf("%d secret(s) written in the file: %s; %s", len(keys), strings.Join(keys, ", "), how)
}
