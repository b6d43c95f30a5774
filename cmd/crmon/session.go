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
	return &cli.StringFlag{Name: "agent-url", Value: session.DefaultAgentURL, Usage: "the crmon agent's control socket, unix://`PATH`", EnvVars: []string{session.AgentURLEnv}}
}

// agentSocket is --agent-url, which must be a control socket: the agent
// serves its session API nowhere else, and whatever answers on a TCP port
// could be anyone.
func agentSocket(c *cli.Context) (string, error) {
	u := c.String("agent-url")
	if _, ok := session.SocketPath(u); !ok {
		return "", usageErrorf("--agent-url %q: want the agent's control socket, unix:///PATH (default %s); the session API is not served over TCP", u, session.DefaultAgentURL)
	}
	return u, nil
}

func sessionCommand() *cli.Command {
	return &cli.Command{
		Name:  "session",
		Usage: "measure a test run on a running agent between start and stop",
		Description: `For test frameworks that do not run their tests as a child of crmon exec:
'crmon session start NAME' before the run, 'crmon session stop NAME' after it. The agent
measures the containers created in between, and the cgroup given with --cgroup: without
one, the report covers those containers only, and says so. stop prints or writes the
report and exits 3 when a limit is exceeded or is on a figure that was not measured. The same API is served
over HTTP under /api/v1/sessions on the agent's control socket (docs/report.md). A session
nobody stops ends when its --lease runs out.`,
		Subcommands: []*cli.Command{
			{
				Name:      "start",
				Usage:     "start a session",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					agentURLFlag(),
					&cli.StringSliceFlag{Name: "containers", Usage: "report only containers with label `LABEL=VALUE` (repeatable)"},
					&cli.StringFlag{Name: "cgroup", Usage: "also measure the cgroup2 `PATH` (e.g. /ci/job-42) and its descendants"},
					sampleIntervalFlag(),
					&cli.DurationFlag{Name: "lease", Value: time.Hour, Usage: "end the session if it is not stopped within this time (at most 24h)", Action: durationIn(time.Second, 24*time.Hour)},
				},
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					u, err := agentSocket(c)
					if err != nil {
						return err
					}
					s, err := session.Start(ctx(c), session.Options{
						AgentURL: u,
						StartRequest: session.StartRequest{
							Name: name, Containers: c.StringSlice("containers"), Cgroup: c.String("cgroup"),
							SampleIntervalSeconds: c.Duration("sample-interval").Seconds(),
							LeaseSeconds:          c.Duration("lease").Seconds(),
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
				Flags:     append(reportFlags(), regressionFlags()...),
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					checks, err := loadChecks(c)
					if err != nil {
						return withCode(exitUsage, err)
					}
					u, err := agentSocket(c)
					if err != nil {
						return err
					}
					// Before the session ends: its report exists once.
					outs, err := openReports(c, exitFailure)
					if err != nil {
						return err
					}
					defer outs.Abort()
					rep, err := session.Attach(u, name, nil).Stop(ctx(c))
					if err != nil {
						return err
					}
					return finishReport(c, outs, rep, checks, 0)
				},
			},
			{
				Name:  "list",
				Usage: "list the running sessions",
				Flags: []cli.Flag{agentURLFlag(), &cli.BoolFlag{Name: "json", Usage: "as JSON"}},
				Action: func(c *cli.Context) error {
					u, err := agentSocket(c)
					if err != nil {
						return err
					}
					infos, err := session.List(ctx(c), u, nil)
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
		return "", usageErrorf("want exactly one NAME")
	}
	return c.Args().First(), nil
}
