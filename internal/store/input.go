// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"regexp/syntax"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/strutil"
)

// What one request may ask the parser and the index for, checked before
// either runs: the query slot and its timeout bound the evaluation, not
// these.
const (
	// maxMatchSets bounds a request's match[] parameters. Each selects
	// over the whole index, and the merge of their sets runs to its end
	// whatever the timeout: 9 990 of {__name__=~".+"} (400 KB) over 2 000
	// series took 90 s and 370 MiB of heap. Grafana sends one or two.
	maxMatchSets = 100
	// maxRegexInsts bounds the compiled size, in instructions, of the
	// regular expressions of one request. Go compiles one at about 0.7 µs
	// and 90 bytes an instruction, and a short one may be large: 8 of
	// "(?:x{1000})"×3000 (550 KB) took 17 s and 2.2 GiB of heap before
	// any query ran. 200 000 is a regex of some 3 000 container IDs.
	maxRegexInsts = 200_000
)

// checkRegexes refuses queries and selectors whose regular expressions
// would take more than maxRegexInsts to compile, together. Every string
// of the text counts, as the regex it would be: the lexer cannot tell the
// regex argument of label_replace from other strings. Errors the parser
// would report are left to it.
func checkRegexes(param string, texts ...string) error {
	var total int64
	for _, text := range texts {
		l := parser.Lex(text)
		var it parser.Item
		for l.NextItem(&it); it.Typ != parser.EOF && it.Typ != parser.ERROR; l.NextItem(&it) {
			if it.Typ != parser.STRING {
				continue
			}
			s, err := strutil.Unquote(it.Val)
			if err != nil {
				continue
			}
			re, err := syntax.Parse(s, syntax.Perl|syntax.DotNL)
			if err != nil {
				// Not a regex, or one too large even for Go (its
				// parser bounds that cheaply): by its length.
				total += int64(len(s))
			} else {
				total += regexInsts(re)
			}
			if total > maxRegexInsts {
				return badData("invalid parameter %q: its regular expressions would compile to more than %d instructions; match fewer or shorter patterns", param, maxRegexInsts)
			}
		}
	}
	return nil
}

// regexInsts is about how many instructions re compiles to, never fewer
// (TestRegexInstsBoundsTheCompiledSize): a literal's runes, a capture's
// two, a repeat's body and its branch as many times as it may repeat,
// one for every other node, and the program's own two. Capped, as nested
// repeats multiply.
func regexInsts(re *syntax.Regexp) int64 { return 2 + insts(re) }

func insts(re *syntax.Regexp) int64 {
	const limit = 1 << 40
	switch re.Op {
	case syntax.OpLiteral:
		return int64(len(re.Rune))
	case syntax.OpCapture:
		return 2 + insts(re.Sub[0])
	case syntax.OpRepeat:
		n := re.Max
		if n < 0 {
			n = re.Min + 1
		}
		return min(int64(max(n, 1))*(insts(re.Sub[0])+1)+1, limit)
	}
	n := int64(1)
	for _, s := range re.Sub {
		n = min(n+insts(s), limit)
	}
	return n
}

// checkMatchSets bounds the match[] parameters: how many, and their
// regular expressions.
func checkMatchSets(sets []string) error {
	if len(sets) > maxMatchSets {
		return badData("invalid parameter \"match[]\": %d given, at most %d", len(sets), maxMatchSets)
	}
	return checkRegexes("match[]", sets...)
}
