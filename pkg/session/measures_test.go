// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestContainerReportJSONRoundTrip checks that ContainerReport's own JSON
// methods carry every field, so a field added to it later is not dropped
// silently: a value with every field set survives a round trip.
func TestContainerReportJSONRoundTrip(t *testing.T) {
	var c ContainerReport
	v := reflect.ValueOf(&c).Elem()
	fill(t, v)
	c.Measures.Unmeasured = nil
	c.SetUnmeasured("net_tx_bytes")
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back ContainerReport
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\n%s", diff, b)
	}
}

// fill sets every settable field of v to a non-zero value.
func fill(t *testing.T, v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Type() == reflect.TypeFor[time.Time]() {
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC)))
			continue
		}
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			if p.Elem().Kind() != reflect.Int {
				t.Fatalf("fill: field %s points to %s", v.Type().Field(i).Name, p.Elem().Kind())
			}
			p.Elem().SetInt(int64(i) + 1)
			f.Set(p)
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.5)
		case reflect.Uint64:
			f.SetUint(uint64(i) + 1)
		case reflect.Int:
			f.SetInt(int64(i) + 1)
		case reflect.Struct:
			fill(t, f)
		case reflect.Slice:
		default:
			t.Fatalf("fill: field %s of kind %s", v.Type().Field(i).Name, f.Kind())
		}
	}
}
