// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"fmt"
	"path/filepath"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"

	"github.com/crmon-dev/crmon/internal/userfile"
)

// maxWebFileBytes bounds the web config and the certificate, key and CA
// files it names: a few KiB each.
const maxWebFileBytes = 1 << 20

// CheckConfigFile checks the web config file at path, and the certificate,
// key and client CA files it names, by crmon's rule for files a user
// names: regular files, at most 1 MiB. exporter-toolkit reads them with
// os.ReadFile, at start and again on every request and TLS handshake, so
// /dev/zero there would exhaust memory and a FIFO would hang the server.
// What the file says is left to exporter-toolkit, which reports it.
func CheckConfigFile(path string) error {
	if path == "" {
		return nil
	}
	b, err := userfile.Read(path, maxWebFileBytes)
	if err != nil {
		return fmt.Errorf("--web.config.file: %w", err)
	}
	var c web.Config
	if yaml.Unmarshal(b, &c) != nil {
		return nil
	}
	c.TLSConfig.SetDirectory(filepath.Dir(path))
	for _, f := range []struct{ key, path string }{
		{"cert_file", c.TLSConfig.TLSCertPath},
		{"key_file", c.TLSConfig.TLSKeyPath},
		{"client_ca_file", c.TLSConfig.ClientCAs},
	} {
		if f.path == "" {
			continue
		}
		if _, err := userfile.Read(f.path, maxWebFileBytes); err != nil {
			return fmt.Errorf("--web.config.file %s: %s: %w", path, f.key, err)
		}
	}
	return nil
}

// Scheme is "https" when the web config at path turns TLS on, else
// "http": for the URLs the agent prints. CheckConfigFile has read path.
func Scheme(path string) string {
	if path == "" {
		return "http"
	}
	b, err := userfile.Read(path, maxWebFileBytes)
	if err != nil {
		return "http"
	}
	var c web.Config
	// exporter-toolkit serves TLS when a certificate is given, and plain
	// HTTP otherwise.
	if yaml.Unmarshal(b, &c) != nil || c.TLSConfig.TLSCertPath == "" && c.TLSConfig.TLSCert == "" {
		return "http"
	}
	return "https"
}
