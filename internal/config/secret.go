// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/crmon-dev/crmon/internal/userfile"
)

// Secret is a value that must not be printed: passwords, tokens, webhook
// URLs. Every way of formatting it (fmt, TOML, JSON) gives "<secret>";
// Reveal gives the value to the code that sends it.
//
// Each secret key of the file may instead be written as <key>_file (read
// from that file, trailing newline trimmed; relative to the config file's
// directory) or <key>_env (read from that environment variable).
type Secret string

const masked = "<secret>"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String masks the secret; an unset one prints as "".
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString masks the secret in %#v too.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// MarshalText masks the secret, so encoders never write the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// maxSecretBytes bounds a secret file: a token, a password or a URL,
// never more than a few KiB.
const maxSecretBytes = 64 << 10

// secretRef is one secret key and its _file and _env variants.
type secretRef struct {
	path  string // "cleanroom.monitoring.alerting.alert_channels[0].password"
	value *Secret
	file  *string
	env   *string
}

// headerRef is a map of secret headers and its _file and _env variants.
type headerRef struct {
	path   string // "cleanroom.monitoring.exporters[0].headers"
	values *map[string]Secret
	file   map[string]string
	env    map[string]string
}

// secrets lists every secret of c.
func (c *Config) secrets() ([]secretRef, []headerRef) {
	var refs []secretRef
	var hdrs []headerRef
	for i := range c.Monitoring.Alerting.AlertChannels {
		ch := &c.Monitoring.Alerting.AlertChannels[i]
		p := fmt.Sprintf("%s.alerting.alert_channels[%d].", monitoringPath, i)
		refs = append(refs,
			secretRef{p + "password", &ch.Password, &ch.PasswordFile, &ch.PasswordEnv},
			secretRef{p + "webhook_url", &ch.WebhookURL, &ch.WebhookURLFile, &ch.WebhookURLEnv},
			secretRef{p + "url", &ch.URL, &ch.URLFile, &ch.URLEnv},
		)
		hdrs = append(hdrs, headerRef{p + "headers", &ch.Headers, ch.HeadersFile, ch.HeadersEnv})
	}
	for i := range c.Monitoring.Exporters {
		e := &c.Monitoring.Exporters[i]
		p := fmt.Sprintf("%s.exporters[%d].", monitoringPath, i)
		refs = append(refs,
			secretRef{p + "credentials.password", &e.Credentials.Password, &e.Credentials.PasswordFile, &e.Credentials.PasswordEnv},
			secretRef{p + "credentials.token", &e.Credentials.Token, &e.Credentials.TokenFile, &e.Credentials.TokenEnv},
		)
		hdrs = append(hdrs, headerRef{p + "headers", &e.Headers, e.HeadersFile, e.HeadersEnv})
	}
	return refs, hdrs
}

// resolveSecrets reads every <key>_file and <key>_env into its secret.
func (c *Config) resolveSecrets(p *problems, opts ParseOptions) {
	refs, hdrs := c.secrets()
	for _, r := range refs {
		base, key := parentPath(r.path), lastKey(r.path)
		k := secretKeys{
			base: base, key: key, fileKey: key + "_file", envKey: key + "_env",
			inline: *r.value != "", file: *r.file, env: *r.env,
		}
		if v, ok := k.resolve(p, opts); ok {
			*r.value = v
		}
	}
	for _, h := range hdrs {
		names := make([]string, 0, len(h.file)+len(h.env))
		for n := range h.file {
			names = append(names, n)
		}
		for n := range h.env {
			if _, dup := h.file[n]; !dup {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		base, key := parentPath(h.path), lastKey(h.path)
		for _, n := range names {
			_, inline := (*h.values)[n]
			k := secretKeys{
				base: base, key: key + "." + n, fileKey: key + "_file." + n, envKey: key + "_env." + n,
				inline: inline, file: h.file[n], env: h.env[n],
			}
			v, ok := k.resolve(p, opts)
			if !ok {
				continue
			}
			if *h.values == nil {
				*h.values = make(map[string]Secret)
			}
			(*h.values)[n] = v
		}
	}
}

// secretKeys is one secret as the file may give it: inline, from a file or
// from the environment.
type secretKeys struct {
	base                 string // the table's path
	key, fileKey, envKey string // "password", "password_file", "password_env"
	inline               bool
	file, env            string
}

// resolve reads the secret from its file or environment variable. ok is
// false when neither is set or when reading fails; then p has why, and the
// secret is marked bad, so that validation does not also call it missing.
func (k secretKeys) resolve(p *problems, opts ParseOptions) (Secret, bool) {
	v, ok, failed := k.read(p, opts)
	if failed {
		p.markBad(join(k.base, k.key))
	}
	return v, ok
}

func (k secretKeys) read(p *problems, opts ParseOptions) (v Secret, ok, failed bool) {
	var set []string
	if k.inline {
		set = append(set, k.key)
	}
	if k.file != "" {
		set = append(set, k.fileKey)
	}
	if k.env != "" {
		set = append(set, k.envKey)
	}
	if len(set) > 1 {
		both := "both"
		if len(set) > 2 {
			both = "all"
		}
		p.add(join(k.base, k.key), "%s are %s set; they are alternatives, keep one", strings.Join(set, " and "), both)
		return "", false, true
	}
	switch {
	case k.file != "":
		name := k.file
		if !filepath.IsAbs(name) && opts.Dir != "" {
			name = filepath.Join(opts.Dir, name)
		}
		b, err := userfile.Read(name, maxSecretBytes)
		if err != nil {
			// The path is not secret, the content is: say only why.
			p.add(join(k.base, k.fileKey), "%s = %s: cannot read the secret: %v", k.fileKey, quote(k.file), unwrapPathError(err))
			return "", false, true
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			p.add(join(k.base, k.fileKey), "%s = %s: the file is empty", k.fileKey, quote(k.file))
			return "", false, true
		}
		return Secret(b), true, false
	case k.env != "":
		lookup := opts.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		v, ok := lookup(k.env)
		if !ok || v == "" {
			p.add(join(k.base, k.envKey), "%s = %s: the environment variable %s is not set or is empty", k.envKey, quote(k.env), clip(k.env))
			return "", false, true
		}
		return Secret(v), true, false
	}
	return "", false, false
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// holdsSecret reports whether a value of type t is a secret or a table or
// list that holds one (credentials = { password = … }).
func holdsSecret(t reflect.Type) bool {
	return holdsSecretDepth(t, 0)
}

func holdsSecretDepth(t reflect.Type, depth int) bool {
	if t == nil || depth > 8 {
		return false
	}
	if t == reflect.TypeFor[Secret]() {
		return true
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return holdsSecretDepth(t.Elem(), depth+1)
	case reflect.Struct:
		for i := range t.NumField() {
			if tomlName(t.Field(i)) != "" && holdsSecretDepth(t.Field(i).Type, depth+1) {
				return true
			}
		}
	}
	return false
}

// shown is how a load error shows the value as written of the key at
// path: as it is, unless it is a secret or a table or list that can hold
// one (exporters = "prometheus" holds none and is shown).
func shown(key []string, value string) string {
	t, ok := fieldType(key)
	if !ok || !holdsSecret(t) {
		return value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v := strings.TrimSpace(value); t == reflect.TypeFor[Secret]() || t.Kind() == reflect.Map ||
		strings.HasPrefix(v, "{") || strings.HasPrefix(v, "[") {
		return masked
	}
	return value
}

// secretKeyNames are the names of the keys whose values hold a secret, in
// any table: password, token, url, webhook_url, headers, credentials.
func secretKeyNames() map[string]bool {
	names := map[string]bool{}
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || depth > 8 {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			n := tomlName(f)
			if n == "" {
				continue
			}
			if holdsSecret(f.Type) {
				names[n] = true
			}
			walk(f.Type, depth+1)
		}
	}
	walk(reflect.TypeFor[file](), 0)
	return names
}

// maskLine cuts the value of the first secret key on a line of the file,
// for errors that quote a line that did not parse:
// `password = "hunter2` becomes `password = <secret>`.
func maskLine(line string) string {
	names := secretKeyNames()
	for i := 0; i < len(line); i++ {
		if line[i] != '=' {
			continue
		}
		k := strings.TrimRight(line[:i], " \t")
		j := len(k)
		for j > 0 && (isBareKeyChar(k[j-1]) || k[j-1] == '"' || k[j-1] == '\'') {
			j--
		}
		if names[strings.Trim(k[j:], `"'`)] {
			return k + " = " + masked
		}
	}
	return line
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// redactedUserinfo stands in for the user and password of a URL: still a
// valid userinfo, so a masked configuration loads back.
const redactedUserinfo = "xxxxx"

// redactURL hides the user information of a URL, which carries a password
// or a token ("https://user:pass@host/" becomes "https://xxxxx@host/"),
// and the values of its query, where receivers take API keys
// ("?api_key=…&db=ci" becomes "?api_key=xxxxx&db=xxxxx"), also in a URL
// that does not parse.
func redactURL(s string) string {
	s = redactQuery(s)
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	return s[:i+3] + redactedUserinfo + rest[at:]
}

// redactQuery replaces the value of each parameter of s's query.
func redactQuery(s string) string {
	q := strings.IndexByte(s, '?')
	if q < 0 {
		return s
	}
	query, frag := s[q+1:], ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, frag = query[:h], query[h:]
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, v, ok := strings.Cut(p, "="); ok && v != "" {
			params[i] = k + "=" + redactedUserinfo
		}
	}
	return s[:q+1] + strings.Join(params, "&") + frag
}

// InlineSecrets lists the secrets the file holds as they are, not through
// <key>_file or <key>_env: passwords, tokens and webhook URLs, headers
// whose name says they carry a credential (Authorization, *token*,
// *key*, *secret*, *password*), and exporter endpoints with a password in
// their user info or a value in their query. Such a file must be readable
// by crmon's user only; `crmon config check` and the agent warn about them.
func (c *Config) InlineSecrets() []string {
	var out []string
	refs, hdrs := c.secrets()
	for _, r := range refs {
		if *r.value != "" && *r.file == "" && *r.env == "" {
			out = append(out, r.path)
		}
	}
	for _, h := range hdrs {
		names := make([]string, 0, len(*h.values))
		for n := range *h.values {
			_, f := h.file[n]
			_, e := h.env[n]
			if !f && !e && credentialHeader(n) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, h.path+"."+n)
		}
	}
	for i, e := range c.Monitoring.Exporters {
		if redactURL(e.Endpoint) != e.Endpoint {
			out = append(out, fmt.Sprintf("%s.exporters[%d].endpoint", monitoringPath, i))
		}
	}
	return out
}

// credentialHeader says whether a header's name says it carries a
// credential.
func credentialHeader(name string) bool {
	n := strings.ToLower(name)
	if n == "authorization" || n == "proxy-authorization" || n == "cookie" {
		return true
	}
	for _, w := range []string{"token", "key", "secret", "password", "auth"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
