// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
)

// maxResponseBytes bounds what crmon reads of a channel's answer; the
// rest is not read.
const maxResponseBytes = 64 << 10

// ChannelOptions are what every channel shares.
type ChannelOptions struct {
	// Client sends the HTTP channels' requests; each request carries its
	// attempt's deadline. nil uses one that follows no redirects, whose
	// target would escape the check that the configured URL passed.
	Client *http.Client
	// Interval is the collection interval, for how long Alertmanager
	// holds a firing alert that is not resent.
	Interval time.Duration
	// ResendInterval is the engine's; 0 for the default.
	ResendInterval time.Duration
	// ExternalURL is the agent's URL, for the webhook's externalURL.
	ExternalURL string
}

// NewChannels makes the configured channels.
func NewChannels(cfg []config.AlertChannel, opts ChannelOptions) ([]Channel, error) {
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.ResendInterval <= 0 {
		opts.ResendInterval = DefaultResendInterval
	}
	var out []Channel
	for _, c := range cfg {
		h := httpChannel{name: c.Name, client: opts.Client, headers: map[string]string{}}
		for k, v := range c.Headers {
			h.headers[k] = v.Reveal()
		}
		switch c.Type {
		case config.ChannelWebhook:
			h.url = c.URL.Reveal()
			out = append(out, &webhook{httpChannel: h, externalURL: opts.ExternalURL})
		case config.ChannelAlertmanager:
			h.url = strings.TrimSuffix(c.URL.Reveal(), "/") + "/api/v2/alerts"
			out = append(out, &alertmanager{httpChannel: h, valid: 4 * max(opts.Interval, opts.ResendInterval)})
		case config.ChannelSlack:
			h.url = c.WebhookURL.Reveal()
			out = append(out, &slack{httpChannel: h, channel: c.Channel})
		case config.ChannelEmail:
			out = append(out, newEmail(c))
		default:
			return nil, fmt.Errorf("alert channel %q: unknown type %q", c.Name, c.Type)
		}
		out[len(out)-1] = &configured{Channel: out[len(out)-1], spec: channelSpec{
			cfg: c, interval: opts.Interval, resend: opts.ResendInterval, externalURL: opts.ExternalURL,
		}}
	}
	return out, nil
}

// configured is a channel NewChannels made, with what it was made from.
type configured struct {
	Channel
	spec channelSpec
}

// channelSpec is what a channel was made from: its config entry, secrets
// as read, and the options that change what it sends.
type channelSpec struct {
	cfg              config.AlertChannel
	interval, resend time.Duration
	externalURL      string
}

// SameChannel reports whether b is a, unchanged: the same channel, or
// channels NewChannels made from equal settings (secrets included).
// A reload keeps the queue of such a channel.
func SameChannel(a, b Channel) bool {
	if a == b {
		return true
	}
	ca, ok1 := a.(*configured)
	cb, ok2 := b.(*configured)
	return ok1 && ok2 && reflect.DeepEqual(ca.spec, cb.spec)
}

// httpChannel POSTs JSON to a URL that may hold a secret.
type httpChannel struct {
	name    string
	url     string
	headers map[string]string
	client  *http.Client
}

func (h *httpChannel) Name() string { return h.name }

// post sends body as JSON. Its errors never show the URL: a webhook URL
// often is the secret.
func (h *httpChannel) post(ctx context.Context, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(b))
	if err != nil {
		return permanent{errors.New("bad URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "crmon")
	for k, v := range h.headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("POST: %s: %s", resp.Status, clip(string(msg)))
	// A 4xx other than 408 and 429 will be the same next time.
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanent{err}
	}
	return err
}

// clip keeps an answer's first line, short, for a log line.
func clip(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}

// annotations are an alert's Alertmanager annotations.
func annotations(a *Alert) map[string]string {
	return map[string]string{
		"summary":   a.Message,
		"value":     num(a.Value),
		"threshold": num(a.Threshold),
	}
}

// amFingerprint is a hex label hash, as Alertmanager shows one.
func amFingerprint(labels map[string]string) string {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// webhook sends Alertmanager's webhook payload, version 4, so that any
// receiver written for Alertmanager works.
type webhook struct {
	httpChannel
	externalURL string
}

func (w *webhook) Type() string { return config.ChannelWebhook }

// WebhookMessage is Alertmanager's webhook payload, version 4.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// status is firing or resolved, as Alertmanager says it.
func status(a *Alert) string {
	if a.State == StateResolved {
		return "resolved"
	}
	return "firing"
}

func (w *webhook) Send(ctx context.Context, n Notification) error {
	a := &n.Alert
	ann := annotations(a)
	msg := WebhookMessage{
		Version:           "4",
		GroupKey:          fmt.Sprintf("{}:{alertname=%q}", a.Name),
		Status:            status(a),
		Receiver:          w.name,
		GroupLabels:       map[string]string{"alertname": a.Name},
		CommonLabels:      a.Labels,
		CommonAnnotations: ann,
		ExternalURL:       w.externalURL,
		Alerts: []WebhookAlert{{
			Status: status(a), Labels: a.Labels, Annotations: ann,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, Fingerprint: amFingerprint(a.Labels),
		}},
	}
	return w.post(ctx, msg)
}

// alertmanager posts to Alertmanager's v2 API, as Prometheus does: a
// firing alert with an endsAt a few resend intervals ahead, renewed by
// each resend; a resolved one with its endsAt.
type alertmanager struct {
	httpChannel
	valid time.Duration
}

func (am *alertmanager) Type() string { return config.ChannelAlertmanager }

// PostableAlert is an alert of Alertmanager's POST /api/v2/alerts.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (am *alertmanager) Send(ctx context.Context, n Notification) error {
	a := &n.Alert
	ends := a.EndsAt
	if a.State != StateResolved {
		ends = a.Timestamp.Add(am.valid)
	}
	return am.post(ctx, []PostableAlert{{Labels: a.Labels, Annotations: annotations(a), StartsAt: a.StartsAt, EndsAt: ends}})
}

// slack posts to a Slack incoming webhook: ADR-006's attachment, coloured
// by severity, and a resolved message.
type slack struct {
	httpChannel
	channel string
}

func (s *slack) Type() string { return config.ChannelSlack }

// SlackMessage is what crmon posts to a Slack incoming webhook.
type SlackMessage struct {
	Text        string            `json:"text"`
	Channel     string            `json:"channel,omitempty"`
	Attachments []SlackAttachment `json:"attachments"`
}

// SlackAttachment is a Slack message attachment.
type SlackAttachment struct {
	Color  string       `json:"color"`
	Fields []SlackField `json:"fields"`
}

// SlackField is one field of an attachment.
type SlackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// slackColor is the ADR's colour per severity.
func slackColor(severity string) string {
	switch severity {
	case config.SeverityCritical:
		return "danger"
	case config.SeverityWarning:
		return "warning"
	}
	return "good"
}

func (s *slack) Send(ctx context.Context, n Notification) error {
	a := &n.Alert
	text, color, at := "🚨 Resource Alert: "+a.Message, slackColor(a.Severity), a.Timestamp
	if a.State == StateResolved {
		text, color, at = "✅ Resolved: "+a.Message, "good", a.EndsAt
	}
	return s.post(ctx, SlackMessage{Text: text, Channel: s.channel, Attachments: []SlackAttachment{{
		Color: color,
		Fields: []SlackField{
			{Title: "Resource", Value: a.Resource, Short: true},
			{Title: "Value", Value: num(a.Value), Short: true},
			{Title: "Threshold", Value: num(a.Threshold), Short: true},
			{Title: "Time", Value: at.UTC().Format(time.RFC3339), Short: true},
		},
	}}})
}
