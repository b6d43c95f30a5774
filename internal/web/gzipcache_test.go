// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"testing"
)

// gunzip decompresses b with the standard library's reader, which checks
// the CRC-32 and the length.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// exposition is a scrape-like body: families of n containers' series,
// the values of family changed (-1: none) made from gen.
func exposition(families, n, changed, gen int) []byte {
	var b bytes.Buffer
	for f := range families {
		fmt.Fprintf(&b, "# HELP fam_%d Help of %d.\n# TYPE fam_%d gauge\n", f, f, f)
		for c := range n {
			v := c * f
			if f == changed {
				v += gen
			}
			fmt.Fprintf(&b, "fam_%d{id=\"/docker/%064d\",image=\"crmon-test/busybox:latest\",name=\"c-%d\"} %d\n", f, c, c, v)
		}
	}
	return b.Bytes()
}

// TestGzipCache checks that every body compresses to a gzip member the
// standard library reads back byte for byte, and that a scrape whose
// families did not change since the last compresses nothing again, one
// where one family changed only that family's pieces.
func TestGzipCache(t *testing.T) {
	g := newGzipCache()
	long := strings.Repeat("x", 3*maxPiece)
	for _, body := range []string{
		"",
		"\n",
		"# HELP only a header\n",
		"# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 2\n",
		"no newline at the end",
		"a{l=\"" + long + "\"} 1\nb 2\n",
		"# HELP a " + long + "\n# TYPE a gauge\na 1\n",
		string(exposition(3, 500, -1, 0)),
	} {
		var z bytes.Buffer
		g.compress(&z, []byte(body))
		if got := gunzip(t, z.Bytes()); string(got) != body {
			t.Errorf("%.40q...: read back %d bytes, want %d", body, len(got), len(body))
		}
	}

	const families, n = 30, 200
	body := exposition(families, n, -1, 0)
	var z bytes.Buffer
	g.compress(&z, body)
	first := g.fresh
	if first < families {
		t.Errorf("%d pieces for %d families", first, families)
	}
	z.Reset()
	g.compress(&z, body)
	if g.fresh != 0 {
		t.Errorf("the same body again: %d pieces compressed anew, want 0", g.fresh)
	}
	if got := gunzip(t, z.Bytes()); !bytes.Equal(got, body) {
		t.Error("the same body again does not read back")
	}
	for gen := 1; gen <= 3; gen++ {
		changed := exposition(families, n, 7, gen)
		z.Reset()
		g.compress(&z, changed)
		if got := gunzip(t, z.Bytes()); !bytes.Equal(got, changed) {
			t.Errorf("gen %d: the body with a family changed does not read back", gen)
		}
		// One family of 200 series is about 26 kB: two pieces.
		if g.fresh == 0 || g.fresh > 2 {
			t.Errorf("gen %d: %d pieces compressed anew for one family changed, want 1 or 2", gen, g.fresh)
		}
	}

	// Compressing piece by piece costs a few percent of size.
	var whole bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&whole, gzip.BestSpeed)
	zw.Write(body)
	zw.Close()
	z.Reset()
	g.compress(&z, body)
	if z.Len() > whole.Len()*5/4 {
		t.Errorf("%d bytes piece by piece, %d in one stream with the standard library's fastest level", z.Len(), whole.Len())
	}
	t.Logf("%d bytes: %d piece by piece, %d in one stream (standard library, fastest)", len(body), z.Len(), whole.Len())
}

// TestPieceEnd checks where pieces end: small families together, a
// family of at least minPiece bytes on its own, a large one every
// pieceLines series, a long line whole.
func TestPieceEnd(t *testing.T) {
	line := strings.Repeat("y", 99) + "\n"
	fam := func(name string, n int) string {
		return "# HELP " + name + " H.\n# TYPE " + name + " gauge\n" + strings.Repeat(line, n)
	}
	hdr := len(fam("a", 0))
	for _, c := range []struct {
		name string
		b    string
		want int
	}{
		{"empty", "", 0},
		{"one line", "a 1\n", 4},
		{"no newline", "a 1", 3},
		{"small families together", fam("a", 1) + fam("b", 1) + fam("c", 1), 3 * (hdr + 100)},
		{"a family of minPiece alone", fam("a", 90) + fam("b", 1), hdr + 90*100},
		{"small ones up to the next family past minPiece", fam("a", 50) + fam("b", 50) + fam("c", 50), 2*hdr + 100*100},
		{"a large family by pieceLines", fam("a", 300), hdr + pieceLines*100},
		{"the rest of a large family", strings.Repeat(line, 90) + fam("b", 1), 90 * 100},
		{"a short rest with the next family", strings.Repeat(line, 72) + fam("b", 1) + fam("c", 1), 72*100 + 2*(hdr+100)},
		{"a long line whole", strings.Repeat("z", maxPiece+5) + "\nb 1\n", maxPiece + 6},
	} {
		if got := pieceEnd([]byte(c.b)); got != c.want {
			t.Errorf("%s: pieceEnd = %d, want %d", c.name, got, c.want)
		}
	}
}

// BenchmarkGzip compares compressing an 820 kB body of 30 families of 200
// containers' series, one of which changed since the last scrape, in one
// stream with klauspost/compress at its fastest level (as /metrics did)
// and piece by piece with the pieces kept.
//
//	go test -run '^$' -bench Gzip ./internal/web/
func BenchmarkGzip(b *testing.B) {
	bodies := [2][]byte{exposition(30, 200, 7, 1), exposition(30, 200, 7, 2)}
	b.Run("stream", func(b *testing.B) {
		var z bytes.Buffer
		fw := newGzipCache().fw
		i := 0
		for b.Loop() {
			z.Reset()
			fw.Reset(&z)
			fw.Write(bodies[i%2])
			fw.Close()
			i++
		}
		b.ReportMetric(float64(z.Len()), "bytes")
	})
	b.Run("pieces", func(b *testing.B) {
		g := newGzipCache()
		var z bytes.Buffer
		i := 0
		for b.Loop() {
			z.Reset()
			g.compress(&z, bodies[i%2])
			i++
		}
		b.ReportMetric(float64(z.Len()), "bytes")
	})
}
