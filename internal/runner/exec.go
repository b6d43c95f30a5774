// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/pkg/session"
)

// ReportName names an exec's report, whatever its session and cgroup are
// called, so that JUnit consumers follow it from one run to the next.
const ReportName = "exec"

// DefaultParent is the cgroup under which runs get their own.
const DefaultParent = "crmon"

// nestedParent returns the parent for a run's cgroup: parent, unless this
// process already runs inside a run's cgroup (`crmon exec` called by a
// command that `crmon exec` runs), where the inner run nests inside the
// outer one, so the outer still counts everything.
func nestedParent(own, parent string) string {
	p := "/" + strings.Trim(parent, "/") + "/"
	if rest, ok := strings.CutPrefix(own, p); ok && strings.HasPrefix(rest, "exec-") {
		return own
	}
	return parent
}

// ExecOptions configure Exec.
type ExecOptions struct {
	Options
	Hierarchy *cgroups.Hierarchy
	// Parent is DefaultParent when "".
	Parent string
	// Containers selects the containers reported ("label=value").
	Containers []string
	// AgentURL, when set, measures through the agent's session API;
	// otherwise Tracker measures in this process.
	AgentURL string
	// HTTPClient asks the agent (nil: a plain client with a timeout); the
	// caller that checks the agent's health first must ask with it too,
	// or an agent behind TLS or basic auth is taken for absent.
	HTTPClient *http.Client
	Tracker    sessions.TrackerOptions
	// Local, when set, is called when the agent does not start the
	// session, with what it answered: it returns the options to measure
	// in this process instead (the probes loaded here) and what releases
	// them. Its error ends Exec before CMD runs.
	Local func(agentErr error) (sessions.TrackerOptions, func(), error)
}

// Exec runs CMD in cgroups of its own, measures it and returns the report
// with the command's fields filled. The cgroups are removed at the end.
// Errors before CMD runs return no report; a failing CMD is not an error.
func Exec(ctx context.Context, opts ExecOptions) (rep *session.Report, res Result, err error) {
	h := opts.Hierarchy
	if h == nil {
		if h, err = cgroups.Detect("/proc", "/"); err != nil {
			return nil, res, err
		}
		opts.Hierarchy = h
	}
	if opts.Parent == "" {
		opts.Parent = DefaultParent
	}
	if own, err := cgroups.ProcCgroup("/proc", os.Getpid()); err == nil {
		opts.Parent = nestedParent(own.V2, opts.Parent)
	}
	name := fmt.Sprintf("exec-%d-%08x", os.Getpid(), rand.Uint32())
	cg, err := NewCgroup(h, opts.Parent, name)
	if err != nil {
		return nil, res, err
	}
	defer func() {
		if rerr := cg.Remove(); rerr != nil && err == nil {
			err = rerr
		}
	}()

	var stop func() (*session.Report, error)
	if opts.AgentURL != "" {
		s, err := session.Start(ctx, session.Options{
			AgentURL:   opts.AgentURL,
			HTTPClient: opts.HTTPClient,
			StartRequest: session.StartRequest{
				Name: name, Containers: opts.Containers, Cgroup: cg.Path,
				NewCgroup:             true,
				V1Cgroup:              len(cg.V1Dirs) > 0,
				SampleIntervalSeconds: opts.Tracker.SampleInterval.Seconds(),
				// Should this process die, the agent ends the session and
				// removes the cgroup with what is left in it.
				EndWithClient: true,
			},
		})
		if err == nil {
			stop = func() (*session.Report, error) {
				// The run is over: its end must not depend on ctx.
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return s.Stop(sctx)
			}
		} else {
			// An agent without the session API, or one that refuses:
			// measure here rather than not at all.
			if opts.Tracker.Logger != nil {
				opts.Tracker.Logger.Warn("the agent did not start a session; measuring in this process", "agent", opts.AgentURL, "err", err)
			}
			if opts.Local != nil {
				topts, release, lerr := opts.Local(err)
				if lerr != nil {
					return nil, res, lerr
				}
				defer release()
				opts.Tracker = topts
			}
		}
	}
	if stop == nil {
		tr, err := sessions.NewTracker(opts.Tracker, sessions.Target{
			Name: name, Cgroup: cg.Paths(), Fresh: true, Containers: opts.Containers,
		})
		if err != nil {
			return nil, res, err
		}
		stop = func() (*session.Report, error) { return tr.Stop(), nil }
	}

	opts.Options.CountProcesses = true
	res, runErr := Run(ctx, cg, opts.Options)
	rep, stopErr := stop()
	if runErr != nil {
		return nil, res, errors.Join(runErr, stopErr)
	}
	if stopErr != nil {
		return nil, res, stopErr
	}
	if res.Counted {
		rep.Totals.ProcessesStarted = res.ProcessesStarted
		rep.Totals.SetMeasured("processes_started")
		rep.Unavailable = slices.DeleteFunc(rep.Unavailable, func(s string) bool { return s == "processes_started" })
	}
	if res.Stragglers {
		rep.Stragglers = &session.Stragglers{Processes: res.Left, Killed: res.Killed}
	}
	rep.Name = ReportName
	rep.Command = opts.Args
	rep.ExitCode = session.Exit(res.ExitCode)
	rep.StartedAt = res.Started
	rep.EndedAt = res.Ended
	rep.DurationSeconds = res.Ended.Sub(res.Started).Seconds()
	return rep, res, nil
}
