// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package version says which crmon this is. Version is set at link time
// (-ldflags "-X github.com/crmon-dev/crmon/internal/version.Version=v0.1.0");
// the revision comes from the Go build info when built from a checkout.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is the release, "dev" for untagged builds.
var Version = "dev"

// Info is what `crmon version` prints and crmon_build_info exports.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Modified  bool   `json:"modified"`
	BuildTime string `json:"build_time"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get reads the build info.
func Get() Info {
	in := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.BuildTime = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	return in
}

func (i Info) String() string {
	var parts []string
	if rev := i.Revision; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if i.Modified {
			rev += "-dirty"
		}
		parts = append(parts, "revision "+rev)
	}
	if i.BuildTime != "" {
		parts = append(parts, "committed "+i.BuildTime)
	}
	parts = append(parts, i.GoVersion+" "+i.Platform)
	return fmt.Sprintf("crmon %s (%s)", i.Version, strings.Join(parts, ", "))
}
