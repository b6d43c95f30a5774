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
	m.Unmeasured = setUnmeasured(reflect.ValueOf(m).Elem(), measureFields, m.Unmeasured, fields)
}

// SetMeasured takes fields off the unmeasured list: another source
// measured them.
func (m *Measures) SetMeasured(fields ...string) {
	m.Unmeasured = slices.DeleteFunc(m.Unmeasured, func(f string) bool { return slices.Contains(fields, f) })
	if len(m.Unmeasured) == 0 {
		m.Unmeasured = nil
	}
}

// Measured reports whether a source measured field, a HostPeaks JSON
// name such as "cpu_usage_percent".
func (h *HostPeaks) Measured(field string) bool {
	return !slices.Contains(h.Unmeasured, field)
}

// SetUnmeasured marks fields (HostPeaks JSON names) as not measured and
// zeroes them.
func (h *HostPeaks) SetUnmeasured(fields ...string) {
	h.Unmeasured = setUnmeasured(reflect.ValueOf(h).Elem(), hostFields, h.Unmeasured, fields)
}

func setUnmeasured(v reflect.Value, fs structFields, list, fields []string) []string {
	for _, f := range fields {
		if i, ok := fs.index[f]; ok {
			v.Field(i).SetZero()
		}
		if !slices.Contains(list, f) {
			list = append(list, f)
		}
	}
	return list
}

// structFields are the JSON names of a struct's fields in order, and
// each one's field index.
type structFields struct {
	names []string
	index map[string]int
}

func fieldsOf(t reflect.Type) structFields {
	fs := structFields{index: map[string]int{}}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fs.names = append(fs.names, name)
		fs.index[name] = i
	}
	return fs
}

var (
	measureFields = fieldsOf(reflect.TypeFor[Measures]())
	hostFields    = fieldsOf(reflect.TypeFor[HostPeaks]())
)

// MeasureFields lists the JSON names of Measures' fields, in order.
func MeasureFields() []string { return slices.Clone(measureFields.names) }

// MarshalJSON writes null for every field not measured.
func (m Measures) MarshalJSON() ([]byte, error) {
	return marshalObject(reflect.ValueOf(&m).Elem(), measureFields, m.Unmeasured)
}

// UnmarshalJSON reads null as not measured.
func (m *Measures) UnmarshalJSON(data []byte) error {
	type plain Measures // no methods: no recursion
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	nulls, err := nullFields(data, measureFields)
	*m = Measures(p)
	m.Unmeasured = nulls
	return err
}

// MarshalJSON writes null for every field not measured.
func (h HostPeaks) MarshalJSON() ([]byte, error) {
	return marshalObject(reflect.ValueOf(&h).Elem(), hostFields, h.Unmeasured)
}

// UnmarshalJSON reads null as not measured.
func (h *HostPeaks) UnmarshalJSON(data []byte) error {
	type plain HostPeaks
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	nulls, err := nullFields(data, hostFields)
	*h = HostPeaks(p)
	h.Unmeasured = nulls
	return err
}

func marshalObject(v reflect.Value, fs structFields, unmeasured []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if err := appendFields(&b, v, fs, unmeasured, true); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func appendFields(b *bytes.Buffer, v reflect.Value, fs structFields, unmeasured []string, first bool) error {
	for _, name := range fs.names {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`"` + name + `":`)
		if slices.Contains(unmeasured, name) {
			b.WriteString("null")
			continue
		}
		val, err := json.Marshal(v.Field(fs.index[name]).Interface())
		if err != nil {
			return err
		}
		b.Write(val)
	}
	return nil
}

// nullFields lists the fields of fs that data sets to null.
func nullFields(data []byte, fs structFields) ([]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range fs.names {
		// Absent is no measurement either: crmon writes every field, and
		// a figure missing from a report edited or written by another
		// tool must not be read as 0 (a regression gate would pass on it).
		if v, ok := raw[name]; !ok || string(bytes.TrimSpace(v)) == "null" {
			out = append(out, name)
		}
	}
	return out, nil
}

type containerMeta struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Image  string `json:"image"`
	Cgroup string `json:"cgroup,omitempty"`
	Lifecycle
}

// MarshalJSON flattens the measures into the container's object (the
// embedded Measures' own MarshalJSON would otherwise stand for the whole).
func (c ContainerReport) MarshalJSON() ([]byte, error) {
	meta, err := json.Marshal(containerMeta{c.ID, c.Name, c.Image, c.Cgroup, c.Lifecycle})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(meta[:len(meta)-1])
	if err := appendFields(&b, reflect.ValueOf(&c.Measures).Elem(), measureFields, c.Unmeasured, false); err != nil {
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
	*c = ContainerReport{ID: meta.ID, Name: meta.Name, Image: meta.Image, Cgroup: meta.Cgroup, Lifecycle: meta.Lifecycle, Measures: m}
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

type processMeta struct {
	Command string `json:"command"`
	PIDs    []int  `json:"pids"`
	Count   int    `json:"count"`
}

// MarshalJSON flattens the measures into the process's object.
func (p ProcessReport) MarshalJSON() ([]byte, error) {
	pids := p.PIDs
	if pids == nil {
		pids = []int{}
	}
	meta, err := json.Marshal(processMeta{p.Command, pids, p.Count})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(meta[:len(meta)-1])
	if err := appendFields(&b, reflect.ValueOf(&p.Measures).Elem(), measureFields, p.Unmeasured, false); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *ProcessReport) UnmarshalJSON(data []byte) error {
	var meta processMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return err
	}
	var m Measures
	if err := m.UnmarshalJSON(data); err != nil {
		return err
	}
	*p = ProcessReport{Command: meta.Command, PIDs: meta.PIDs, Count: meta.Count, Measures: m}
	return nil
}
