// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/crmon-dev/crmon/internal/userfile"
)

// maxStateBytes bounds what is read of a state file: DefaultMaxInstances
// instances of a few hundred bytes each, and more than any write makes
// (DefaultMaxStateBytes, or a larger MaxStateBytes up to this).
const maxStateBytes = 16 << 20

// stateFile is the state file's content.
type stateFile struct {
	Version   int             `json:"version"`
	Instances []stateInstance `json:"instances"`
}

type stateInstance struct {
	Rule string `json:"rule"` // the rule's key
	// ID is the container's id label; "" for a host rule.
	ID           string `json:"id,omitempty"`
	Container    string `json:"container,omitempty"`
	Condition    string `json:"condition"`
	Alert        Alert  `json:"alert"`
	LastNotified int64  `json:"last_notified_unix_nano"`
	LastSent     int64  `json:"last_sent_unix_nano"`
}

const stateVersion = 1

// load restores the instances of the state file whose rule is unchanged.
// A missing file is a first start; a bad one is logged and ignored.
func (e *Engine) load() {
	if e.opts.StatePath == "" {
		return
	}
	b, err := userfile.Read(e.opts.StatePath, maxStateBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var sf stateFile
	if err == nil {
		err = json.Unmarshal(b, &sf)
	}
	if err == nil && sf.Version != stateVersion {
		err = errors.New("unknown version")
	}
	if err != nil {
		e.log.Warn("alert state not restored; starting with no alerts", "file", e.opts.StatePath, "err", err)
		return
	}
	keys := map[string]bool{}
	for i := range e.rules {
		keys[e.rules[i].key()] = true
	}
	for _, si := range sf.Instances {
		a := si.Alert
		if !keys[si.Rule] || (a.State != StatePending && a.State != StateFiring) || len(a.Labels) > 64 || len(e.inst) >= e.opts.MaxInstances {
			continue
		}
		a.condition = si.Condition
		e.inst[instKey{rule: a.Name, id: si.ID}] = &instance{
			ruleKey: si.Rule, alert: a, container: si.Container,
			lastNotified: timeFromNano(si.LastNotified), lastSent: timeFromNano(si.LastSent),
		}
	}
	e.dirty = false
}

// state is what the state file holds now. Called with mu held.
func (e *Engine) state() *stateFile {
	sf := &stateFile{Version: stateVersion, Instances: make([]stateInstance, 0, len(e.inst))}
	for k, in := range e.inst {
		sf.Instances = append(sf.Instances, stateInstance{
			Rule: in.ruleKey, ID: k.id, Container: in.container, Condition: in.alert.condition, Alert: in.alert,
			LastNotified: nano(in.lastNotified), LastSent: nano(in.lastSent),
		})
	}
	return sf
}

// write saves sf to the state file by rename, so that a crash leaves the
// old file or the new one. Called without mu: a slow disk delays only
// the evaluations, never a scrape or the API.
func (e *Engine) write(path string, sf *stateFile) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	b, left := encodeState(sf, min(e.opts.MaxStateBytes, maxStateBytes))
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	if err == nil {
		err = userfile.WriteFile(path, func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		})
	}
	if left > 0 {
		e.log.Warn("alert state file full; instances left out of it, which a restart forgets", "file", path,
			"left_out", left, "kept", len(sf.Instances)-left, "max_bytes", e.opts.MaxStateBytes)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		// Said once until a save works again, not at every evaluation;
		// a later evaluation tries again.
		if !e.saveFailed {
			e.log.Warn("cannot save the alert state; a restart will forget the alerts", "file", path, "err", err)
		}
		e.dirty, e.saveFailed = true, true
		return
	}
	e.saveFailed = false
}

// encodeState encodes sf in at most limit bytes: firing instances first
// (a restart that forgot one would notify it again), then pending ones,
// each group the most recently active first. left is how many did not
// fit.
func encodeState(sf *stateFile, limit int) (b []byte, left int) {
	rank := func(s *stateInstance) int {
		if s.Alert.State == StateFiring {
			return 0
		}
		return 1
	}
	slices.SortFunc(sf.Instances, func(a, b stateInstance) int {
		return cmp.Or(cmp.Compare(rank(&a), rank(&b)), b.Alert.ActiveAt.Compare(a.Alert.ActiveAt),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.ID, b.ID))
	})
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, stateVersion, 10)
	b = append(b, `,"instances":[`...)
	const tail = "]}\n"
	n := 0
	for i := range sf.Instances {
		one, err := json.Marshal(&sf.Instances[i])
		if err != nil {
			continue
		}
		if len(b)+1+len(one)+len(tail) > limit {
			// In order: a pending instance never takes the place of a
			// firing one.
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, one...)
		n++
	}
	return append(b, tail...), len(sf.Instances) - n
}

func nano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeFromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
