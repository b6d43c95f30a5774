// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/alert"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/web"
)

// alertStateFile is the engine's state file under the data directory
// (store.path), so that a restart neither notifies again inside the
// cooldown nor forgets a firing alert.
const alertStateFile = "alerts.json"

// alerting is the running alert engine and its delivery.
type alerting struct {
	svc     *alert.Service
	metrics *alert.DeliveryMetrics
	logger  *slog.Logger
	sub     *agent.Subscription
	// ran is closed when the engine has evaluated the stream's last
	// sample.
	ran chan struct{}
	// grace is delivery_grace_period, for the stop.
	grace time.Duration
}

// startAlerting starts the engine on the agent's sample stream; query
// evaluates expr rules over the store (nil without one).
func startAlerting(cfg *config.Config, a *agent.Agent, query func(context.Context, string, time.Time) ([]alert.ExprSample, error), logger *slog.Logger) (*alerting, error) {
	al := &alerting{metrics: alert.NewDeliveryMetrics(), logger: logger, ran: make(chan struct{}),
		grace: cfg.Monitoring.Alerting.DeliveryGracePeriod.Std()}
	e := alert.New(alert.Rules(cfg), alert.Options{
		Cooldown:  cfg.Monitoring.Alerting.CooldownPeriod.Std(),
		StatePath: statePath(cfg),
		Query:     query,
		Logger:    logger,
	})
	d, err := al.dispatcher(cfg)
	if err != nil {
		return nil, err
	}
	al.svc = alert.NewService(e, d)
	// A few samples of slack: evaluation takes microseconds, and a
	// subscriber that still fell behind would lose the oldest, counted.
	al.sub = a.Subscribe("alert", 4)
	go func() {
		defer close(al.ran)
		al.svc.Run(al.sub)
	}()
	return al, nil
}

// statePath is the engine's state file. It keeps what was notified; with
// no channel nothing is, and the agent writes nothing to disk.
func statePath(cfg *config.Config) string {
	a := cfg.Monitoring.Alerting
	if len(a.AlertChannels) == 0 || !a.EnableAlerting {
		return ""
	}
	return filepath.Join(cfg.Monitoring.Store.Path, alertStateFile)
}

func (al *alerting) dispatcher(cfg *config.Config) (*alert.Dispatcher, error) {
	chs, err := alert.NewChannels(cfg.Monitoring.Alerting.AlertChannels, channelOptions(cfg))
	if err != nil {
		return nil, err
	}
	return alert.NewDispatcher(chs, al.metrics, alert.DeliveryOptions{Logger: al.logger}), nil
}

func channelOptions(cfg *config.Config) alert.ChannelOptions {
	return alert.ChannelOptions{Interval: cfg.Monitoring.CollectionInterval.Std()}
}

// reload applies a new config: the rules (the state of unchanged ones
// kept), the cooldown, the state file and the channels. The queue of a
// channel the reload does not change is kept, with the delivery under
// way; a changed channel's queue goes to its new settings; a removed
// channel's queue is delivered for delivery_grace_period.
func (al *alerting) reload(cfg *config.Config) error {
	chs, err := alert.NewChannels(cfg.Monitoring.Alerting.AlertChannels, channelOptions(cfg))
	if err != nil {
		return err
	}
	al.svc.Engine.SetOptions(cfg.Monitoring.Alerting.CooldownPeriod.Std(), statePath(cfg))
	al.svc.Engine.SetRules(alert.Rules(cfg))
	al.grace = cfg.Monitoring.Alerting.DeliveryGracePeriod.Std()
	al.svc.Dispatcher().Reload(chs, al.grace)
	return nil
}

// closeWait bounds the wait for the engine's last evaluation at a stop:
// evaluating takes microseconds, but a stop must not hang on it.
const closeWait = time.Second

// close stops alerting after the agent's loop: the engine evaluates what
// the stream still holds, the state file is written, and the channels
// deliver what is queued for at most delivery_grace_period; what they
// could not is counted as dropped and logged.
func (al *alerting) close() {
	al.sub.Close()
	select {
	case <-al.ran:
	case <-time.After(closeWait):
		al.logger.Warn("the alert engine did not finish its last evaluation; stopping without it")
	}
	al.svc.Engine.Flush()
	al.svc.Dispatcher().Close(al.grace)
}

func alertsCommand() *cli.Command {
	return &cli.Command{
		Name:  "alerts",
		Usage: "list the agent's active alerts, or send a test alert through the channels",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "print the active alerts of a running agent (its /api/v1/alerts)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "web.listen-address", Value: web.DefaultListenAddress, Usage: "the agent's --web.listen-address", EnvVars: []string{"CRMON_WEB_LISTEN_ADDRESS"}},
					&cli.BoolFlag{Name: "json", Usage: "print the agent's answer as JSON (Prometheus' /api/v1/alerts shape)"},
				},
				Action: alertsList,
			},
			{
				Name:  "test",
				Usage: "send a test alert through each alert channel of the config and say how each went (exit 1 if one failed)",
				Flags: []cli.Flag{
					configFlag(),
					&cli.StringSliceFlag{Name: "channel", Usage: "only this channel (repeatable)"},
					&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "deadline of each channel's attempt", Action: durationIn(100*time.Millisecond, 5*time.Minute)},
				},
				Action: alertsTest,
			},
		},
	}
}

// maxAlertsAnswer bounds what alerts list reads of the agent's answer.
const maxAlertsAnswer = 16 << 20

func alertsList(c *cli.Context) error {
	addr := c.String("web.listen-address")
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/alerts", nil)
	if err != nil {
		return usageErrorf("--web.listen-address %q: %v", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking the agent at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAlertsAnswer+1))
	if err != nil {
		return fmt.Errorf("reading the agent's answer: %w", err)
	}
	if len(b) > maxAlertsAnswer {
		return fmt.Errorf("the agent's answer is larger than %d bytes", maxAlertsAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the agent at %s answered %s", addr, resp.Status)
	}
	var r alert.APIResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("the agent's answer: %w", err)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, r)
	}
	return printAlerts(c.App.Writer, r.Data.Alerts)
}

// printAlerts prints alerts as a table, oldest first.
func printAlerts(w io.Writer, alerts []alert.APIAlert) error {
	if len(alerts) == 0 {
		_, err := fmt.Fprintln(w, "no active alerts")
		return err
	}
	sort.SliceStable(alerts, func(i, j int) bool { return alerts[i].ActiveAt.Before(alerts[j].ActiveAt) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tSTATE\tSEVERITY\tACTIVE SINCE\tSUMMARY\tLABELS")
	for _, a := range alerts {
		var extra []string
		for k, v := range a.Labels {
			if k != "alertname" && k != "severity" && k != "resource" {
				extra = append(extra, k+"="+v)
			}
		}
		slices.Sort(extra)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Labels["alertname"], a.State, a.Labels["severity"],
			a.ActiveAt.UTC().Format(time.RFC3339), a.Annotations["summary"], strings.Join(extra, ","))
	}
	return tw.Flush()
}

func alertsTest(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	chCfg := cfg.Monitoring.Alerting.AlertChannels
	if only := c.StringSlice("channel"); len(only) > 0 {
		var names []string
		for _, ch := range chCfg {
			names = append(names, ch.Name)
		}
		for _, n := range only {
			if slices.Contains(names, n) {
				continue
			}
			if len(names) == 0 {
				return usageErrorf("--channel %q: the config has no alert channels", n)
			}
			quoted := make([]string, len(names))
			for i, c := range names {
				quoted[i] = strconv.Quote(c)
			}
			return usageErrorf("--channel %q: no such channel; the channels are %s", n, strings.Join(quoted, ", "))
		}
		chCfg = slices.DeleteFunc(slices.Clone(chCfg), func(ch config.AlertChannel) bool { return !slices.Contains(only, ch.Name) })
	}
	if len(chCfg) == 0 {
		return errors.New("the config has no alert channels ([[cleanroom.monitoring.alerting.alert_channels]])")
	}
	chs, err := alert.NewChannels(chCfg, alert.ChannelOptions{Interval: cfg.Monitoring.CollectionInterval.Std()})
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	now := time.Now()
	n := alert.Notification{Alert: alert.Alert{
		Name: "CrmonTest", Severity: config.SeverityInfo, Resource: "test",
		Message:   "test alert from crmon on " + host + "; nothing is wrong",
		Timestamp: now, ActiveAt: now, StartsAt: now, State: alert.StateFiring,
		Labels: map[string]string{"alertname": "CrmonTest", "severity": config.SeverityInfo, "resource": "test", "instance": host},
	}}
	// Every channel at once, each within the timeout: a dead one does
	// not hold up the others' answers.
	results := make([]error, len(chs))
	took := make([]time.Duration, len(chs))
	var wg sync.WaitGroup
	for i, ch := range chs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			start := time.Now()
			results[i] = ch.Send(ctx, n)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tTYPE\tRESULT\tTIME")
	failed := 0
	for i, ch := range chs {
		res := "sent"
		if results[i] != nil {
			res, failed = "failed: "+results[i].Error(), failed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ch.Name(), ch.Type(), res, took[i].Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return withCode(exitFailure, fmt.Errorf("%d of %d channels failed", failed, len(chs)))
	}
	return nil
}
