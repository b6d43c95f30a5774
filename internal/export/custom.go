// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bytes"
	"context"
	"net/http"

	"github.com/crmon-dev/crmon/internal/config"
)

// custom POSTs the agent's snapshot (ADR-006's ResourceMetrics, as
// /api/v1/snapshot serves it): one JSON object per tick and request, or
// NDJSON, batch_size snapshots a request, one per line, oldest first. The
// config's headers and credentials go with every request.
type custom struct {
	p      *poster
	url    string
	ndjson bool
	buf    bytes.Buffer
}

func newCustom(c config.Exporter, hc *http.Client, e *Exporter) *custom {
	return &custom{p: newPoster(hc, e, ""), url: c.Endpoint, ndjson: c.Format == config.CustomNDJSON}
}

func (c *custom) wantsDocs() bool { return true }
func (c *custom) close()          {}

// maxBatch is one snapshot a request in the JSON format.
func (c *custom) maxBatch() int {
	if c.ndjson {
		return 0
	}
	return 1
}

func (c *custom) send(ctx context.Context, b batch) (sent, error) {
	if !c.ndjson {
		n, err := c.p.post(ctx, c.url, "application/json", b.chunks[0].doc, false, nil)
		return sent{bytes: n}, err
	}
	c.buf.Reset()
	for _, ch := range b.chunks {
		c.buf.Write(ch.doc)
		c.buf.WriteByte('\n')
	}
	n, err := c.p.post(ctx, c.url, "application/x-ndjson", c.buf.Bytes(), false, nil)
	return sent{bytes: n}, err
}
