// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/crmon-dev/crmon/pkg/metrics"
)

// APIAlert is an active alert as Prometheus' /api/v1/alerts shows one.
type APIAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       State             `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
	// Value is the last value, as Prometheus prints it.
	Value string `json:"value"`
}

// APIResponse is Prometheus' /api/v1/alerts answer.
type APIResponse struct {
	Status string `json:"status"`
	Data   struct {
		Alerts []APIAlert `json:"alerts"`
	} `json:"data"`
}

// ToAPI turns alerts into Prometheus' shape.
func ToAPI(alerts []Alert) APIResponse {
	r := APIResponse{Status: "success"}
	r.Data.Alerts = make([]APIAlert, 0, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		r.Data.Alerts = append(r.Data.Alerts, APIAlert{
			Labels: a.Labels, Annotations: annotations(a), State: a.State,
			ActiveAt: a.ActiveAt, Value: strconv.FormatFloat(a.Value, 'e', -1, 64),
		})
	}
	return r
}

// APIHandler serves the engine's active alerts (pending and firing) in
// the shape of Prometheus' GET /api/v1/alerts.
func APIHandler(e *Engine) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ToAPI(e.Alerts()))
	})
}

// Snapshot turns alerts into the snapshot's shape.
func Snapshot(alerts []Alert) []metrics.ActiveAlert {
	out := make([]metrics.ActiveAlert, 0, len(alerts))
	for _, a := range alerts {
		s := metrics.ActiveAlert{
			Name: a.Name, Severity: a.Severity, Resource: a.Resource, Message: a.Message,
			Value: a.Value, Threshold: a.Threshold, Timestamp: a.Timestamp, Labels: a.Labels,
			State: string(a.State), ActiveAt: a.ActiveAt,
		}
		if !a.StartsAt.IsZero() {
			t := a.StartsAt
			s.StartsAt = &t
		}
		out = append(out, s)
	}
	return out
}
