// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package browser drives a real headless Chromium (Debian's chromium, which
// make deps installs) for the tests of crmon's pages: the live page on the
// agent and the HTML reports. It is a package of its own so that only the
// tests that use a browser link chromedp.
package browser

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// New starts a headless Chromium for the test and returns a context that
// chromedp.Run and chromedp.Do drive it with; the browser ends with the
// test. Bound each step with a context derived from it
// (context.WithTimeout): a deadline on the browser's own context would
// end the browser.
func New(t testing.TB) context.Context {
	t.Helper()
	testenv.RequireLong(t, "a browser")
	bin := testenv.RequireCommand(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
		// The machine has no route out: without these, Chromium keeps
		// trying to reach Google's services in the background.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser now, so that a missing or broken Chromium is
	// reported here and not as a timeout in the test's first action.
	if err := chromedp.Do(bctx); err != nil {
		testenv.Unavailable(t, "starting chromium: %v", err)
	}
	return bctx
}

// Screenshot writes a full-page PNG of what ctx shows to the test's
// artifact directory (see ArtifactDir) and returns its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 is PNG; less is JPEG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(ArtifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// ArtifactDir is where tests leave what a person looks at afterwards
// (screenshots): $CRMON_TEST_ARTIFACTS, which make test sets to
// test-artifacts/ in the repository, or a directory under the system's
// temporary directory.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CRMON_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "crmon-test-artifacts")
	}
	dir = filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
