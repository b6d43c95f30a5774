// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/crmon-dev/crmon/internal/config"
)

// influx sends series as InfluxDB line protocol, one line per sample:
// the measurement is the metric name, the tags its labels and the
// exporter's, the one field "value". 1.x: POST /write?db=&precision=
// with basic auth; 2.x: POST /api/v2/write?org=&bucket=&precision= with
// "Authorization: Token …". Bodies are gzip-compressed, which both take.
type influx struct {
	p    *poster
	e    *Exporter
	url  string
	prec lineprotocol.Precision
	enc  lineprotocol.Encoder
	lbuf []label
}

// influxPrecisions maps the config's precision to the encoder's and to
// the URL's: 1.x spells nanoseconds and microseconds n and u.
var influxPrecisions = map[string]struct {
	p      lineprotocol.Precision
	v1, v2 string
}{
	"ns": {lineprotocol.Nanosecond, "n", "ns"},
	"us": {lineprotocol.Microsecond, "u", "us"},
	"ms": {lineprotocol.Millisecond, "ms", "ms"},
	"s":  {lineprotocol.Second, "s", "s"},
}

func newInflux(c config.Exporter, hc *http.Client, e *Exporter) (*influx, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return nil, err
	}
	prec, ok := influxPrecisions[c.Precision]
	if !ok {
		prec = influxPrecisions[config.DefaultInfluxPrecision]
	}
	q := url.Values{}
	base := strings.TrimSuffix(u.Path, "/")
	if c.Bucket != "" {
		hc.Transport.(*authTransport).tokenScheme = "Token"
		base = strings.TrimSuffix(base, "/api/v2/write") + "/api/v2/write"
		q.Set("org", c.Org)
		q.Set("bucket", c.Bucket)
		q.Set("precision", prec.v2)
	} else {
		base = strings.TrimSuffix(base, "/write") + "/write"
		q.Set("db", c.Database)
		q.Set("precision", prec.v1)
	}
	u.Path, u.RawQuery = base, q.Encode()
	return &influx{p: newPoster(hc, e, config.ExporterInfluxDB), e: e, url: u.String(), prec: prec.p}, nil
}

func (in *influx) wantsDocs() bool { return false }
func (in *influx) close()          {}

func (in *influx) send(ctx context.Context, b batch) (sent, error) {
	body, skipped := in.encode(b)
	if skipped > 0 {
		in.e.log.Debug("samples InfluxDB cannot store (NaN or ±Inf) left out", "samples", skipped)
	}
	if len(body) == 0 {
		return sent{skipped: skipped}, nil
	}
	n, err := in.p.post(ctx, in.url, "text/plain; charset=utf-8", body, true, nil)
	return sent{bytes: n, skipped: skipped}, err
}

// encode writes b's samples as lines, oldest first. Values InfluxDB cannot
// store (NaN, ±Inf: a summary without observations) are left out and
// counted.
func (in *influx) encode(b batch) (body []byte, skipped int) {
	in.enc.Reset()
	in.enc.SetPrecision(in.prec)
	for _, c := range b.chunks {
		for _, p := range c.pts[c.from:c.to] {
			v, ok := lineprotocol.FloatValue(p.v)
			if !ok {
				skipped++
				continue
			}
			name, ls := in.tags(p.key)
			in.enc.StartLine(name)
			for _, l := range ls {
				in.enc.AddTag(l.name, l.value)
			}
			in.enc.AddField("value", v)
			in.enc.EndLine(c.t)
			if err := in.enc.Err(); err != nil {
				in.e.log.Debug("a sample the line protocol cannot carry", "measurement", name, "err", err)
				in.enc.ClearErr()
				skipped++
			}
		}
	}
	return in.enc.Bytes(), skipped
}

// tags are a series' labels and the exporter's, sorted (the line protocol
// wants tags in key order); the series' own win, and empty values, which
// the line protocol cannot carry, are left out.
func (in *influx) tags(key string) (string, []label) {
	name, ls := splitKey(key, in.lbuf)
	ls = mergeLabels(ls, in.e.labels)
	out := ls[:0]
	for _, l := range ls {
		if l.value != "" {
			out = append(out, l)
		}
	}
	in.lbuf = out
	return name, out
}
