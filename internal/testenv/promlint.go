// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Inherited names: families whose node_exporter or cAdvisor names break
// promtool's lint, kept so that dashboards and alert rules work, as
// node_exporter's own checkmetrics.sh keeps them. Each is named exactly;
// a new family that breaks the lint is a failure, never an exemption by
// prefix.
var inheritedLint = map[string]bool{
	// entropy is counted in bits (node_exporter's entropy collector)
	"node_entropy_available_bits": true,
	"node_entropy_pool_size_bits": true,
	// cAdvisor's counter without _total
	"container_memory_failcnt": true,
}

// netstatInherited are node_exporter's default netstat fields (its
// --collector.netstat.fields default), spelled as the kernel spells them.
var netstatInherited = []string{
	"Icmp6_InErrors", "Icmp6_InMsgs", "Icmp6_OutMsgs", "Icmp_InErrors", "Icmp_InMsgs", "Icmp_OutMsgs",
	"Ip6_InOctets", "Ip6_OutOctets", "IpExt_InOctets", "IpExt_OutOctets", "Ip_Forwarding",
	"TcpExt_ListenDrops", "TcpExt_ListenOverflows", "TcpExt_SyncookiesFailed", "TcpExt_SyncookiesRecv",
	"TcpExt_SyncookiesSent", "TcpExt_TCPOFOQueue", "TcpExt_TCPRcvQDrop", "TcpExt_TCPSynRetrans",
	"TcpExt_TCPTimeouts", "Tcp_ActiveOpens", "Tcp_CurrEstab", "Tcp_InErrs", "Tcp_InSegs", "Tcp_OutRsts",
	"Tcp_OutSegs", "Tcp_PassiveOpens", "Tcp_RetransSegs", "Udp6_InDatagrams", "Udp6_InErrors",
	"Udp6_NoPorts", "Udp6_OutDatagrams", "Udp6_RcvbufErrors", "Udp6_SndbufErrors", "UdpLite6_InErrors",
	"UdpLite_InErrors", "Udp_InDatagrams", "Udp_InErrors", "Udp_NoPorts", "Udp_OutDatagrams",
	"Udp_RcvbufErrors", "Udp_SndbufErrors",
}

// InheritedLintNames returns the exact metric names whose lint findings
// are inherited from node_exporter and cAdvisor, for a scrape of a host
// whose /proc/meminfo is meminfo: node_exporter names a family after
// every meminfo key as the kernel spells it (node_memory_MemTotal_bytes),
// so the keys that file has are the names it would carry.
func InheritedLintNames(meminfo string) (map[string]bool, error) {
	data, err := os.ReadFile(meminfo)
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(inheritedLint)+len(netstatInherited)+64)
	for n := range inheritedLint {
		names[n] = true
	}
	for _, f := range netstatInherited {
		names["node_netstat_"+f] = true
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		// node_exporter: "Active(anon)" becomes "Active_anon", and a
		// value in kB becomes _bytes.
		key = strings.NewReplacer("(", "_", ")", "").Replace(strings.TrimSpace(key))
		if strings.HasSuffix(strings.TrimSpace(rest), "kB") {
			names["node_memory_"+key+"_bytes"] = true
		} else {
			names["node_memory_"+key] = true
		}
	}
	return names, sc.Err()
}

// LintFindingName returns the metric name a promtool or promlint finding
// is about (its first word).
func LintFindingName(finding string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(finding), " ")
	return name
}

// CheckPromtool runs `promtool check metrics` on a scrape of a host whose
// meminfo file is meminfo: the exposition must parse (promtool's exit 1),
// and every lint finding (exit 3) must be about an inherited name.
func CheckPromtool(t testing.TB, scrape []byte, meminfo string) {
	t.Helper()
	promtool := RequireCommand(t, "promtool")
	inherited, err := InheritedLintNames(meminfo)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !inherited[LintFindingName(line)] {
			t.Errorf("promtool check metrics: %s", line)
		}
	}
}
