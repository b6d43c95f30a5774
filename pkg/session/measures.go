// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// Measured reports whether a source measured field, a Measures JSON name
// such as "net_rx_bytes". A field that was not measured is 0 in Go, but
// that 0 is no measurement: JSON writes it as null, people see n/a, and a
// limit on it cannot pass.
func (m *Measures) Measured(field string) bool {
	return !slices.Contains(m.Unmeasured, field)
}

// SetUnmeasured marks fields (Measures JSON names) as not measured and
// zeroes them.
func (m *Measures) SetUnmeasured(fields ...string) {
	v := reflect.ValueOf(m).Elem()
	for _, f := range fields {
		if i, ok := measureIndex[f]; ok {
			v.Field(i).SetZero()
		}
		if !slices.Contains(m.Unmeasured, f) {
			m.Unmeasured = append(m.Unmeasured, f)
		}
	}
}

// SetMeasured takes fields off the unmeasured list: another source
// measured them.
func (m *Measures) SetMeasured(fields ...string) {
	m.Unmeasured = slices.DeleteFunc(m.Unmeasured, func(f string) bool { return slices.Contains(fields, f) })
	if len(m.Unmeasured) == 0 {
		m.Unmeasured = nil
	}
}

// measureFields are the JSON names of Measures' fields in order, and
// measureIndex maps each to its field index.
var measureFields, measureIndex = func() ([]string, map[string]int) {
	t := reflect.TypeFor[Measures]()
	var names []string
	idx := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		idx[name] = i
	}
	return names, idx
}()

// MeasureFields lists the JSON names of Measures' fields, in order.
func MeasureFields() []string { return slices.Clone(measureFields) }

// MarshalJSON writes null for every field not measured.
func (m Measures) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if err := m.appendFields(&b, true); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (m *Measures) appendFields(b *bytes.Buffer, first bool) error {
	v := reflect.ValueOf(m).Elem()
	for _, name := range measureFields {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`"` + name + `":`)
		if !m.Measured(name) {
			b.WriteString("null")
			continue
		}
		val, err := json.Marshal(v.Field(measureIndex[name]).Interface())
		if err != nil {
			return err
		}
		b.Write(val)
	}
	return nil
}

// UnmarshalJSON reads null as not measured.
func (m *Measures) UnmarshalJSON(data []byte) error {
	type plain Measures // no methods: no recursion
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*m = Measures(p)
	m.Unmeasured = nil
	for _, name := range measureFields {
		if v, ok := raw[name]; ok && string(bytes.TrimSpace(v)) == "null" {
			m.Unmeasured = append(m.Unmeasured, name)
		}
	}
	return nil
}

type containerMeta struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Image  string `json:"image"`
	Cgroup string `json:"cgroup,omitempty"`
}

// MarshalJSON flattens the measures into the container's object (the
// embedded Measures' own MarshalJSON would otherwise stand for the whole).
func (c ContainerReport) MarshalJSON() ([]byte, error) {
	meta, err := json.Marshal(containerMeta{c.ID, c.Name, c.Image, c.Cgroup})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(meta[:len(meta)-1])
	if err := c.Measures.appendFields(&b, false); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *ContainerReport) UnmarshalJSON(data []byte) error {
	var meta containerMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return err
	}
	var m Measures
	if err := m.UnmarshalJSON(data); err != nil {
		return err
	}
	*c = ContainerReport{ID: meta.ID, Name: meta.Name, Image: meta.Image, Cgroup: meta.Cgroup, Measures: m}
	return nil
}

// MarshalJSON writes actual as null when it was not measured.
func (l LimitResult) MarshalJSON() ([]byte, error) {
	out := struct {
		Name    string   `json:"name"`
		Scope   string   `json:"scope"`
		Pattern string   `json:"pattern,omitempty"`
		Limit   float64  `json:"limit"`
		Actual  *float64 `json:"actual"`
		Unit    string   `json:"unit"`
		OK      bool     `json:"ok"`
		Status  string   `json:"status"`
		Reason  string   `json:"reason,omitempty"`
	}{l.Name, l.Scope, l.Pattern, l.Limit, nil, l.Unit, l.OK, l.Status, l.Reason}
	if l.Measured() {
		out.Actual = &l.Actual
	}
	return json.Marshal(out)
}
