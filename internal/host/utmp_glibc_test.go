// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// utmpWriter writes a utmp file with the C library's own pututline: two
// logins, a login prompt and a closed session.
const utmpWriter = `#include <string.h>
#include <utmp.h>
static void put(short type, int pid, const char *line, const char *user) {
	struct utmp u;
	memset(&u, 0, sizeof u);
	u.ut_type = type;
	u.ut_pid = pid;
	strncpy(u.ut_line, line, sizeof u.ut_line);
	strncpy(u.ut_id, line + strlen(line) - 2, sizeof u.ut_id);
	strncpy(u.ut_user, user, sizeof u.ut_user);
	pututline(&u);
}
int main(int argc, char **argv) {
	if (utmpname(argv[1]) != 0) return 1;
	setutent();
	put(LOGIN_PROCESS, 600, "tty1", "LOGIN");
	put(USER_PROCESS, 1301, "pts/0", "alice");
	put(USER_PROCESS, 1402, "pts/1", "bob");
	put(DEAD_PROCESS, 1100, "pts/2", "");
	endutent();
	return 0;
}
`

// TestUtmpFromGlibc reads a utmp file that glibc wrote, which checks the
// record layout on the architecture the tests run on.
func TestUtmpFromGlibc(t *testing.T) {
	var cc string
	for _, c := range []string{"clang-19", "clang", "cc", "gcc"} {
		if p, err := exec.LookPath(c); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		testenv.Unavailable(t, "needs a C compiler (clang-19) to write utmp with glibc")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "w.c"), filepath.Join(dir, "w")
	if err := os.WriteFile(src, []byte(utmpWriter), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compiling: %v\n%s", err, out)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	utmp := filepath.Join(root, "run/utmp")
	if err := os.WriteFile(utmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, utmp).CombinedOutput(); err != nil {
		t.Fatalf("writing utmp: %v\n%s", err, out)
	}
	c := build(t, "users", collect.Paths{RootFS: root}, Options{})
	if err := c.Update(t.Context(), fixtureTime); err != nil {
		t.Fatal(err)
	}
	var m metrics.ResourceMetrics
	c.Fill(&m)
	if m.System.Users != 2 {
		st, _ := os.Stat(utmp)
		t.Errorf("users = %d, want 2 (file of %d bytes, %d per record here)", m.System.Users, st.Size(), nativeUtmpSize())
	}
}
