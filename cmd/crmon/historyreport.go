// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/report"
	"github.com/crmon-dev/crmon/internal/web"
	"github.com/crmon-dev/crmon/pkg/session"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "write the report crmon exec writes, for any past window of the agent's history",
		Description: `Asks the running agent to build, from its store, the report of the window --from
to --to: each container that lived in it (or those --container names, globs allowed),
with its CPU, block I/O, network and memory figures (the eBPF probes' where they were
served), the host's peaks, and plots. Times are RFC 3339, Unix seconds, "now", or a
duration back from now ("2h"). A failed CI job can be examined after the fact by its
start and end times. The summary goes to stderr unless --quiet.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Required: true, Usage: "start of the window"},
			&cli.StringFlag{Name: "to", Value: "now", Usage: "end of the window"},
			&cli.StringSliceFlag{Name: "container", Usage: "only containers whose name matches (a glob; repeatable)"},
			&cli.StringFlag{Name: "name", Usage: "name of the report"},
			&cli.StringFlag{Name: "json", Usage: "write the report as JSON to this file (- for stdout)"},
			&cli.StringFlag{Name: "html", Usage: "write the report as a self-contained HTML page with plots to this file (- for stdout)"},
			&cli.StringFlag{Name: "markdown", Usage: "write the report as GitHub-flavoured Markdown to this file (- for stdout)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no summary on stderr"},
			&cli.StringFlag{Name: "web.listen-address", Value: web.DefaultListenAddress, Usage: "the agent's address (host:port, or a URL for https)", EnvVars: []string{"CRMON_WEB_LISTEN_ADDRESS"}},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "how long to wait for the agent"},
		},
		Action: reportAction,
	}
}

func reportAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("crmon report takes no arguments (got %q); the window is --from and --to", c.Args().First())
	}
	now := time.Now()
	from, err := parseWhen(c.String("from"), now)
	if err != nil {
		return usageErrorf("--from: %v", err)
	}
	to, err := parseWhen(c.String("to"), now)
	if err != nil {
		return usageErrorf("--to: %v", err)
	}
	if !to.After(from) {
		return usageErrorf("--to %s is not after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	outs, err := openReports(c, 1)
	if err != nil {
		return err
	}
	defer outs.Abort()
	rep, err := fetchReport(c.Context, c.String("web.listen-address"), c.Duration("timeout"), from, to, c.StringSlice("container"))
	if err != nil {
		return err
	}
	if n := c.String("name"); n != "" {
		rep.Name = n
	}
	var errs []error
	if !c.Bool("quiet") {
		errs = append(errs, report.Summary(c.App.ErrWriter, rep))
	}
	errs = append(errs, outs.write(c, "json", func(w io.Writer) error { return report.JSON(w, rep, false) }))
	errs = append(errs, outs.write(c, "html", func(w io.Writer) error { return report.HTML(w, rep) }))
	errs = append(errs, outs.write(c, "markdown", func(w io.Writer) error { return report.Markdown(w, rep) }))
	return errors.Join(errs...)
}

// fetchReport asks the agent at addr for the report of from..to.
func fetchReport(ctx context.Context, addr string, timeout time.Duration, from, to time.Time, containers []string) (*session.Report, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	q := url.Values{"from": {fmt.Sprintf("%.3f", float64(from.UnixMilli())/1e3)}, "to": {fmt.Sprintf("%.3f", float64(to.UnixMilli())/1e3)}}
	for _, n := range containers {
		q.Add("container", n)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/report?"+q.Encode(), nil)
	if err != nil {
		return nil, usageErrorf("--web.listen-address %q: %v", addr, err)
	}
	resp, err := (&http.Client{Transport: limitedTransport{http.DefaultTransport}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the agent at %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("the agent at %s serves no history: its store is off ([cleanroom.monitoring.store] enabled)", base)
	}
	var r struct {
		Status    string          `json:"status"`
		Data      *session.Report `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("the agent's answer (%s): %w", resp.Status, err)
	}
	if r.Status != "success" || r.Data == nil {
		return nil, fmt.Errorf("the agent at %s: %s: %s", base, r.ErrorType, r.Error)
	}
	return r.Data, nil
}
