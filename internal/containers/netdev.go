// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import "bytes"

// netIface is one interface's counters from /proc/<pid>/net/dev.
type netIface struct {
	name                                  string
	rxBytes, rxPackets, rxErrors, rxDrops uint64
	txBytes, txPackets, txErrors, txDrops uint64
}

// parseNetDev parses /proc/net/dev into ifaces, reusing its entries and
// their names when the interfaces are the same as last time. Loopback is
// left out, as cAdvisor does: it never leaves the container.
//
//	Inter-|   Receive                            |  Transmit
//	 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop ...
//	  eth0:  1296      16    0    0    0     0          0         0     0       0    0    0 ...
func parseNetDev(b []byte, ifaces []netIface) []netIface {
	ifaces = ifaces[:0]
	for i := 0; len(b) > 0; i++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if i < 2 {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if string(name) == "lo" {
			continue
		}
		var f [16]uint64
		n := 0
		for n < len(f) && len(rest) > 0 {
			rest = bytes.TrimLeft(rest, " ")
			var tok []byte
			tok, rest, _ = bytes.Cut(rest, []byte{' '})
			if len(tok) == 0 {
				continue
			}
			var v uint64
			for _, ch := range tok {
				v = v*10 + uint64(ch-'0')
			}
			f[n] = v
			n++
		}
		if n < 12 {
			continue
		}
		k := len(ifaces)
		if k < cap(ifaces) {
			ifaces = ifaces[:k+1]
		} else {
			ifaces = append(ifaces, netIface{})
		}
		it := &ifaces[k]
		if it.name != string(name) {
			it.name = string(name)
		}
		it.rxBytes, it.rxPackets, it.rxErrors, it.rxDrops = f[0], f[1], f[2], f[3]
		it.txBytes, it.txPackets, it.txErrors, it.txDrops = f[8], f[9], f[10], f[11]
	}
	return ifaces
}
