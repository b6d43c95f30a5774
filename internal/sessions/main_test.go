// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"os"
	"testing"

	"github.com/crmon-dev/crmon/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveCgroupParent()
	os.Exit(code)
}
