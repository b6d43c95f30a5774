// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/pkg/session"
)

func agentURLFlag() cli.Flag {
	return &cli.StringFlag{Name: "agent-url", Value: session.DefaultAgentURL, Usage: "the crmon agent to use", EnvVars: []string{session.AgentURLEnv}}
}

func sessionCommand() *cli.Command {
	return &cli.Command{
		Name:  "session",
		Usage: "measure a test run on a running agent between start and stop",
		Description: `For test frameworks that do not run their tests as a child of crmon exec:
'crmon session start NAME' before the run, 'crmon session stop NAME' after it. The agent
measures the containers created in between (and the cgroup given with --cgroup); stop
prints or writes the report and exits 3 when a limit is exceeded. The same API is served
over HTTP under /api/v1/sessions (docs/report.md).`,
		Subcommands: []*cli.Command{
			{
				Name:      "start",
				Usage:     "start a session",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					agentURLFlag(),
					&cli.StringSliceFlag{Name: "containers", Usage: "report only containers with label `LABEL=VALUE` (repeatable)"},
					&cli.StringFlag{Name: "cgroup", Usage: "also measure the cgroup2 `PATH` (e.g. /ci/job-42) and its descendants"},
					&cli.DurationFlag{Name: "sample-interval", Usage: "sample interval of the plots (default 200ms)"},
				},
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					s, err := session.Start(ctx(c), session.Options{
						AgentURL: c.String("agent-url"),
						StartRequest: session.StartRequest{
							Name: name, Containers: c.StringSlice("containers"), Cgroup: c.String("cgroup"),
							SampleIntervalSeconds: c.Duration("sample-interval").Seconds(),
						},
					})
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.ErrWriter, "crmon: session %s started at %s\n", s.Name, s.StartedAt.Format(time.RFC3339Nano))
					return nil
				},
			},
			{
				Name:      "stop",
				Usage:     "stop a session and report",
				ArgsUsage: "NAME",
				Flags:     reportFlags(),
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					limits, err := loadLimits(c)
					if err != nil {
						return cli.Exit("crmon session stop: "+err.Error(), 2)
					}
					rep, err := session.Attach(c.String("agent-url"), name, nil).Stop(ctx(c))
					if err != nil {
						return err
					}
					return finishReport(c, rep, limits, 0)
				},
			},
			{
				Name:  "list",
				Usage: "list the running sessions",
				Flags: []cli.Flag{agentURLFlag(), &cli.BoolFlag{Name: "json", Usage: "as JSON"}},
				Action: func(c *cli.Context) error {
					infos, err := session.List(ctx(c), c.String("agent-url"), nil)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return writeJSON(c.App.Writer, infos)
					}
					return sessionTable(c.App.Writer, infos)
				},
			},
		},
	}
}

// sessionTable prints the running sessions, one a line, with what each
// measures: its cgroup, and which containers created since its start.
func sessionTable(w io.Writer, infos []session.Info) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTARTED\tCGROUP\tCONTAINERS")
	for _, in := range infos {
		cg := in.Cgroup
		if cg == "" {
			cg = "-"
		}
		cs := "all"
		if len(in.Containers) > 0 {
			cs = "labelled " + strings.Join(in.Containers, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", in.Name, in.StartedAt.Format(time.RFC3339), cg, cs)
	}
	return tw.Flush()
}

func ctx(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}

func oneName(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", cli.Exit(fmt.Sprintf("crmon session %s: want exactly one NAME", c.Command.Name), 2)
	}
	return c.Args().First(), nil
}
