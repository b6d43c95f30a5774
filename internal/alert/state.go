// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/crmon-dev/crmon/internal/userfile"
)

// maxStateBytes bounds the state file: DefaultMaxInstances instances of
// a few hundred bytes each.
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
	e.saved = true
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
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	if err == nil {
		err = userfile.WriteFile(path, func(w io.Writer) error {
			return json.NewEncoder(w).Encode(sf)
		})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		// Said once until a save works again, not at every evaluation;
		// the next evaluation tries again.
		if !e.saveFailed {
			e.log.Warn("cannot save the alert state; a restart will forget the alerts", "file", path, "err", err)
		}
		e.saved, e.saveFailed = false, true
		return
	}
	e.saveFailed = false
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
