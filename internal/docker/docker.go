// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package docker is crmon's view of a Docker engine: list, inspect, the
// event stream and writable-layer sizes, behind the Client interface so that
// the rest of crmon does not import the Docker packages.
package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
)

// Container is what crmon needs to know of one container.
type Container struct {
	ID string
	// Name has no leading slash.
	Name string
	// Image is the reference the container was created from
	// ("crmon-test/busybox:latest"), not the image ID.
	Image  string
	Labels map[string]string
	// State is Docker's: created, running, paused, restarting,
	// removing, exited, dead.
	State     string
	Created   time.Time
	Started   time.Time // zero when never started
	Finished  time.Time // zero while running or never stopped
	PID       int       // init process, 0 when not running
	ExitCode  int
	OOMKilled bool
	// CgroupParent is HostConfig.CgroupParent, "" for the engine default.
	CgroupParent string
}

// Running reports whether the container has processes.
func (c Container) Running() bool {
	return c.State == "running" || c.State == "paused" || c.State == "restarting"
}

// Event is a container life-cycle event.
type Event struct {
	// Action is Docker's: create, start, die, destroy, rename, update,
	// pause, unpause, oom.
	Action string
	ID     string
	Time   time.Time
	// Name and Image come with the event, so a container that is gone
	// before it can be inspected is still named.
	Name  string
	Image string
	// ExitCode is a die event's exit code, nil for other events: a
	// container run with --rm may be gone before it can be inspected.
	ExitCode *int
}

// Info is what crmon needs of the engine.
type Info struct {
	ServerVersion string
	APIVersion    string
	// CgroupDriver is "cgroupfs" or "systemd".
	CgroupDriver  string
	CgroupVersion string
	// DockerRootDir holds the writable layers ("/var/lib/docker").
	DockerRootDir string
}

// Client is a Docker engine.
type Client interface {
	Info(ctx context.Context) (Info, error)
	// List returns every container, running or not. It does not fill
	// PID, Started or CgroupParent; Inspect does.
	List(ctx context.Context) ([]Container, error)
	Inspect(ctx context.Context, id string) (Container, error)
	// Events streams container events until ctx ends or the connection
	// drops; the error channel then yields why.
	Events(ctx context.Context) (<-chan Event, <-chan error)
	// Sizes returns each container's writable-layer size (SizeRw) by ID.
	// The engine walks every layer for this, so it is slow.
	Sizes(ctx context.Context) (map[string]int64, error)
	Close() error
}

// IsNotFound reports whether err says the container does not exist (any
// more).
func IsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// IsUnreachable reports whether err says no engine listens at the address
// (nothing accepts the connection), as opposed to one that fails or does
// not answer.
func IsUnreachable(err error) bool { return client.IsErrConnectionFailed(err) }

// Deadlines of the requests to the engine, applied whatever the caller's
// context says (an earlier deadline of the caller's wins): an engine that
// accepts connections and never answers must not hang crmon.
const (
	// CallTimeout bounds Info, List and Inspect.
	CallTimeout = 10 * time.Second
	// SizesTimeout bounds Sizes: the engine walks every writable layer.
	SizesTimeout = 2 * time.Minute
	// ConnectTimeout bounds the wait for the event stream's first answer;
	// the stream itself lasts until the caller's context ends.
	ConnectTimeout = 10 * time.Second
)

// Size bounds of the engine's answers: a list of thousands of containers
// with their labels is a few megabytes, one event a few kilobytes.
const (
	maxAnswerBytes = 32 << 20
	maxEventBytes  = 1 << 20
)

// Engine is a Client talking to a real engine.
type Engine struct {
	c *client.Client
	// base holds the connections c's bounded transport uses.
	base *client.Client
}

var _ Client = (*Engine)(nil)

// New connects to host ("unix:///var/run/docker.sock", "tcp://h:2375"), or
// to $DOCKER_HOST (default the local socket) when host is "". It negotiates
// the API version on first use, so both old engines (API 1.41) and new ones
// work; it does not fail when the engine is down.
func New(host string) (*Engine, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	base, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating docker client: %w", err)
	}
	// The client has no bound on what it reads: a second client reads
	// through the first one's transport with the answers' sizes bounded.
	hc := base.HTTPClient()
	hc.Transport = boundedAnswers{hc.Transport}
	opts = append(opts, client.WithHTTPClient(hc))
	if os.Getenv(client.EnvOverrideCertPath) != "" {
		// The scheme follows the transport's TLS, which the wrapper hides.
		opts = append(opts, client.WithScheme("https"))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		base.Close()
		return nil, fmt.Errorf("creating docker client: %w", err)
	}
	return &Engine{c: c, base: base}, nil
}

// boundedAnswers bounds the bodies the engine sends: maxAnswerBytes for an
// answer, maxEventBytes for one line of the event stream.
type boundedAnswers struct{ next http.RoundTripper }

func (b boundedAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if strings.HasSuffix(r.URL.Path, "/events") {
		resp.Body = &boundedBody{rc: resp.Body, max: maxEventBytes, perLine: true}
	} else {
		resp.Body = &boundedBody{rc: resp.Body, max: maxAnswerBytes}
	}
	return resp, nil
}

// errTooLarge ends a read of an answer larger than its bound.
var errTooLarge = errors.New("docker engine answer too large")

// boundedBody fails a read once max bytes were read, or with perLine, once
// max bytes were read since the last newline.
type boundedBody struct {
	rc      io.ReadCloser
	max     int
	n       int
	perLine bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.n >= b.max {
		return 0, fmt.Errorf("%w: over %d bytes", errTooLarge, b.max)
	}
	if len(p) > b.max-b.n {
		p = p[:b.max-b.n]
	}
	n, err := b.rc.Read(p)
	if i := bytes.LastIndexByte(p[:n], '\n'); b.perLine && i >= 0 {
		b.n = n - i - 1
	} else {
		b.n += n
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }

// bounded runs f with ctx limited to timeout and returns when that ends,
// even while f does not: the client negotiates the API version under a
// mutex, and a request stuck on a hung engine holds it until its own
// deadline, whatever the deadlines of the requests queued behind it. f
// sees the same context, so it ends soon after.
func bounded[T any](ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("no answer from the docker engine: %w", ctx.Err())
	}
}

// Info asks the engine for its version and cgroup layout.
func (e *Engine) Info(ctx context.Context) (Info, error) {
	i, err := bounded(ctx, CallTimeout, func(ctx context.Context) (system.Info, error) { return e.c.Info(ctx) })
	if err != nil {
		return Info{}, fmt.Errorf("docker info: %w", err)
	}
	return Info{
		ServerVersion: i.ServerVersion,
		APIVersion:    e.c.ClientVersion(),
		CgroupDriver:  i.CgroupDriver,
		CgroupVersion: i.CgroupVersion,
		DockerRootDir: i.DockerRootDir,
	}, nil
}

// List lists all containers.
func (e *Engine) List(ctx context.Context) ([]Container, error) {
	cs, err := bounded(ctx, CallTimeout, func(ctx context.Context) ([]container.Summary, error) {
		return e.c.ContainerList(ctx, container.ListOptions{All: true})
	})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := make([]Container, 0, len(cs))
	for _, s := range cs {
		c := Container{
			ID:      s.ID,
			Image:   s.Image,
			Labels:  s.Labels,
			State:   string(s.State),
			Created: time.Unix(s.Created, 0),
		}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		out = append(out, c)
	}
	return out, nil
}

// Inspect reads one container's full state.
func (e *Engine) Inspect(ctx context.Context, id string) (Container, error) {
	j, err := bounded(ctx, CallTimeout, func(ctx context.Context) (container.InspectResponse, error) {
		return e.c.ContainerInspect(ctx, id)
	})
	if err != nil {
		return Container{}, fmt.Errorf("inspecting %.12s: %w", id, err)
	}
	c := Container{ID: j.ID, Name: strings.TrimPrefix(j.Name, "/"), Image: j.Image}
	if j.Config != nil {
		c.Image = j.Config.Image
		c.Labels = j.Config.Labels
	}
	c.Created = parseTime(j.Created)
	if s := j.State; s != nil {
		c.State = string(s.Status)
		c.PID = s.Pid
		c.ExitCode = s.ExitCode
		c.OOMKilled = s.OOMKilled
		c.Started = parseTime(s.StartedAt)
		c.Finished = parseTime(s.FinishedAt)
	}
	if j.HostConfig != nil {
		c.CgroupParent = j.HostConfig.CgroupParent
	}
	return c, nil
}

// parseTime reads Docker's RFC 3339 times; "0001-01-01T00:00:00Z" (never)
// stays the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// watchedActions are the events that change what crmon shows.
var watchedActions = [...]events.Action{
	events.ActionCreate, events.ActionStart, events.ActionDie, events.ActionDestroy,
	events.ActionRename, events.ActionUpdate, events.ActionPause, events.ActionUnPause, events.ActionOOM,
}

// Events streams container events. It returns once the engine has
// answered, so that nothing that happens after is missed, or after
// ConnectTimeout with the error channel saying it did not.
func (e *Engine) Events(ctx context.Context) (<-chan Event, <-chan error) {
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))
	for _, a := range watchedActions {
		f.Add("event", string(a))
	}
	type stream struct {
		msgs <-chan events.Message
		errs <-chan error
	}
	// The client's Events returns only once the engine has sent the
	// response's headers, which a hung engine never does.
	sctx, cancel := context.WithCancel(ctx)
	answered := make(chan stream, 1)
	go func() {
		msgs, errs := e.c.Events(sctx, events.ListOptions{Filters: f})
		answered <- stream{msgs, errs}
	}()
	out := make(chan Event, 64)
	outErr := make(chan error, 1)
	timer := time.NewTimer(ConnectTimeout)
	defer timer.Stop()
	var s stream
	select {
	case s = <-answered:
	case <-timer.C:
		cancel()
		outErr <- fmt.Errorf("docker events: no answer from the docker engine within %v", ConnectTimeout)
		close(out)
		close(outErr)
		return out, outErr
	case <-ctx.Done():
		cancel()
		outErr <- fmt.Errorf("docker events: %w", ctx.Err())
		close(out)
		close(outErr)
		return out, outErr
	}
	msgs, errs := s.msgs, s.errs
	go func() {
		defer cancel()
		defer close(out)
		defer close(outErr)
		for {
			select {
			case m := <-msgs:
				ev := Event{
					Action: string(m.Action), ID: m.Actor.ID, Time: time.Unix(0, m.TimeNano),
					Name: m.Actor.Attributes["name"], Image: m.Actor.Attributes["image"],
				}
				// Health checks arrive as "exec_start: sh -c ..." and
				// "health_status: healthy"; keep the verb only.
				if i := strings.IndexByte(ev.Action, ':'); i >= 0 {
					ev.Action = ev.Action[:i]
				}
				if code, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil && ev.Action == "die" {
					ev.ExitCode = &code
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					outErr <- ctx.Err()
					return
				}
			case err := <-errs:
				if err == nil {
					err = errors.New("docker events: stream closed")
				}
				outErr <- fmt.Errorf("docker events: %w", err)
				return
			}
		}
	}()
	return out, outErr
}

// Sizes lists containers with their sizes. ContainerList with Size works on
// every API version and only sizes containers, where /system/df before API
// 1.42 would size images and volumes too.
func (e *Engine) Sizes(ctx context.Context) (map[string]int64, error) {
	cs, err := bounded(ctx, SizesTimeout, func(ctx context.Context) ([]container.Summary, error) {
		return e.c.ContainerList(ctx, container.ListOptions{All: true, Size: true})
	})
	if err != nil {
		return nil, fmt.Errorf("listing container sizes: %w", err)
	}
	m := make(map[string]int64, len(cs))
	for _, c := range cs {
		m[c.ID] = c.SizeRw
	}
	return m, nil
}

// Close releases the client's connections.
func (e *Engine) Close() error { return errors.Join(e.c.Close(), e.base.Close()) }
