// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/pkg/session"
)

// ProcCounter counts the processes of the cgroups it watches, by the
// kernel (probe.Procs).
type ProcCounter interface {
	Watch(cgroupID uint64) error
	Unwatch(cgroupID uint64)
	Take(cgroupID uint64) ([]probe.Process, error)
	// Running returns what the processes pids, still running in the
	// watched cgroup or below it, used until now.
	Running(cgroupID uint64, procFS string, pids []int) ([]probe.Process, error)
	Dropped() uint64
}

// maxRunning bounds the still-running processes a report lists: the
// processes of the run's cgroup tree at its end.
const maxRunning = 4096

// runProcesses is every process of the run's cgroup tree: those that
// exited, counted by the kernel at their exit, and those still running at
// the end, with what they used until then. A process that exits while
// the running ones are read is taken from the probes' count, once.
func runProcesses(pc ProcCounter, id uint64, procFS, dir string) ([]probe.Process, error) {
	exited, err := pc.Take(id)
	running, rerr := pc.Running(id, procFS, cgroups.TreePIDs(dir, maxRunning))
	late, lerr := pc.Take(id)
	seen := map[int]bool{}
	for _, p := range late {
		seen[p.PID] = true
	}
	for _, p := range running {
		if !seen[p.PID] {
			late = append(late, p)
		}
	}
	return append(exited, late...), errors.Join(err, rerr, lerr)
}

// maxCommands bounds the rows of a report's processes: the rest are
// summed in one row, otherCommands.
const maxCommands = 256

// maxPIDs bounds the PIDs listed per row.
const maxPIDs = 32

const otherCommands = "(other commands)"

// cgroupInode is the cgroup2 ID of the cgroup at path under unified: its
// directory's inode, what the kernel's kn->id is.
func cgroupInode(unified, path string) (uint64, bool) {
	fi, err := os.Stat(filepath.Join(unified, path))
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Ino, true
}

// launchers are the programs whose name alone does not say what ran:
// their first argument that is not an option does.
var launchers = []string{"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox", "env", "go", "java", "node", "deno", "bun",
	"npm", "npx", "yarn", "pnpm", "make", "gmake", "cargo", "python", "ruby", "perl", "php", "Rscript", "dotnet", "mvn", "gradle"}

// commandOf is the row a process belongs to: the executable's name, and
// for a launcher the argument that identifies what it ran. Each test
// binary of `go test ./...` (pkg.test) is a row of its own.
func commandOf(p probe.Process) string {
	exe := p.Comm
	if p.Filename != "" {
		exe = filepath.Base(p.Filename)
	}
	if !isLauncher(exe) || len(p.Args) < 2 {
		return exe
	}
	args := p.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-c" && i+1 < len(args) {
			// sh -c 'CMD ARGS': CMD says what it ran.
			return exe + " -c " + scriptCommand(args[i+1])
		}
		if a == "" || strings.HasPrefix(a, "-") {
			continue
		}
		return exe + " " + filepath.Base(a)
	}
	return exe
}

// shellWords start a shell statement without naming a command.
var shellWords = map[string]bool{"if": true, "for": true, "while": true, "until": true, "case": true, "{": true, "(": true,
	"!": true, "exec": true, "time": true, "then": true, "do": true, "else": true, "command": true, "nohup": true,
	"done": true, "fi": true, "esac": true, "in": true}

// commandWord is a word that can name a program: a path or a name, not an
// option, a test ([ … ]), an assignment or an expansion.
var commandWord = regexp.MustCompile(`^[A-Za-z0-9_.+/][A-Za-z0-9_.+/-]*$`)

// scriptCommand is the first command a shell script runs, as the
// basename of its first word that is not a variable assignment or a
// keyword ("i=0; while …; do make; done" runs make); "(script)" when it
// runs none that shows in its first 255 bytes.
func scriptCommand(script string) string {
	for _, w := range strings.FieldsFunc(script, func(r rune) bool { return strings.ContainsRune(" \t\n;&|`", r) }) {
		if shellWords[w] || !commandWord.MatchString(w) || strings.Trim(w, "0123456789") == "" {
			continue
		}
		return filepath.Base(w)
	}
	return "(script)"
}

func isLauncher(exe string) bool {
	for _, l := range launchers {
		if exe == l {
			return true
		}
		// python3, python3.12, ruby3.1, perl5.36
		if rest, ok := strings.CutPrefix(exe, l); ok && rest != "" && strings.Trim(rest, "0123456789.") == "" {
			return true
		}
	}
	return false
}

// processReports groups ps by command: figures summed, the peak memory
// the largest process's, most CPU first.
func processReports(ps []probe.Process) []session.ProcessReport {
	by := map[string]*session.ProcessReport{}
	for _, p := range ps {
		c := commandOf(p)
		r := by[c]
		if r == nil {
			r = &session.ProcessReport{Command: c}
			by[c] = r
		}
		r.Count++
		if len(r.PIDs) < maxPIDs {
			r.PIDs = append(r.PIDs, p.PID)
		}
		r.CPUSeconds += p.CPU.Seconds()
		r.RunqueueWaitSeconds += p.RunqueueWait.Seconds()
		r.BlockReadBytes += p.ReadBytes
		r.BlockWriteBytes += p.WriteBytes
		r.NetRxBytes += p.NetRxBytes
		r.NetTxBytes += p.NetTxBytes
		r.PeakMemoryBytes = max(r.PeakMemoryBytes, p.MaxRSSBytes)
	}
	out := make([]session.ProcessReport, 0, len(by))
	for _, r := range by {
		sort.Ints(r.PIDs)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CPUSeconds != out[j].CPUSeconds {
			return out[i].CPUSeconds > out[j].CPUSeconds
		}
		return out[i].Command < out[j].Command
	})
	if len(out) > maxCommands {
		rest := session.ProcessReport{Command: otherCommands}
		for _, r := range out[maxCommands-1:] {
			rest.Count += r.Count
			rest.CPUSeconds += r.CPUSeconds
			rest.RunqueueWaitSeconds += r.RunqueueWaitSeconds
			rest.BlockReadBytes += r.BlockReadBytes
			rest.BlockWriteBytes += r.BlockWriteBytes
			rest.NetRxBytes += r.NetRxBytes
			rest.NetTxBytes += r.NetTxBytes
			rest.PeakMemoryBytes = max(rest.PeakMemoryBytes, r.PeakMemoryBytes)
		}
		out = append(out[:maxCommands-1], rest)
	}
	var unmeasured []string
	for _, f := range session.MeasureFields() {
		keep := false
		for _, pf := range session.ProcessFields {
			keep = keep || f == pf
		}
		if !keep {
			unmeasured = append(unmeasured, f)
		}
	}
	for i := range out {
		out[i].SetUnmeasured(unmeasured...)
	}
	return out
}
