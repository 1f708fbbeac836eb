package docs

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// command is one shell command of a document's fenced block.
type command struct {
	Doc  string // path relative to the repository root
	Line int    // line of the command's first line in Doc
	Lang string // sh, bash or console
	// Text is the command as a shell reads it: continuation lines and here-document
	// bodies included, a console block's "$ " prompt removed.
	Text string
	// Key is what the rules match: the first line of Text with continuations joined,
	// the trailing comment removed and blanks squeezed.
	Key string
}

func (c command) String() string { return fmt.Sprintf("%s:%d: %s", c.Doc, c.Line, c.Key) }

// shellLangs are the fence languages whose lines are commands.
var shellLangs = map[string]bool{"sh": true, "bash": true, "console": true, "shell": true}

var (
	fenceRE   = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([A-Za-z0-9_+-]*)")
	heredocRE = regexp.MustCompile(`<<-?\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)(['"]?)`)
)

// extractFile reads path (shown as doc) and returns the commands of its shell blocks.
func extractFile(path, doc string) ([]command, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return extract(doc, string(b))
}

// extract returns the commands of the fenced sh, bash, shell and console blocks of a
// Markdown document. In sh/bash blocks every line that is not blank or a comment
// starts a command; in console blocks only lines with a "$ " prompt do, the rest is
// output. A line ending in a backslash continues on the next line, and a here-document
// runs to its delimiter.
func extract(doc, markdown string) ([]command, error) {
	var (
		cmds    []command
		inFence bool
		fence   string // the opening fence, to find the closing one
		lang    string
		cur     *command
		lines   []string // lines of cur
		heredoc string   // delimiter cur waits for; "" when none
		cont    bool     // the previous line of cur ended in a backslash
	)
	flush := func() {
		if cur == nil {
			return
		}
		cur.Text = strings.Join(lines, "\n")
		cur.Key = keyOf(lines)
		cmds = append(cmds, *cur)
		cur, lines, heredoc, cont = nil, nil, "", false
	}
	sc := bufio.NewScanner(strings.NewReader(markdown))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !inFence {
			if m := fenceRE.FindStringSubmatch(line); m != nil {
				inFence, fence, lang = true, m[1], strings.ToLower(m[2])
			}
			continue
		}
		if heredoc == "" && strings.HasPrefix(strings.TrimSpace(line), fence) && strings.Trim(strings.TrimSpace(line), fence[:1]) == "" {
			if cont {
				return nil, fmt.Errorf("%s:%d: the block ends inside a continued command", doc, n)
			}
			flush()
			inFence = false
			continue
		}
		if !shellLangs[lang] {
			continue
		}
		switch {
		case heredoc != "":
			lines = append(lines, line)
			if strings.TrimSpace(line) == heredoc {
				heredoc = ""
				if !cont {
					flush()
				}
			}
			continue
		case cont:
			text := line
			if lang == "console" {
				text = strings.TrimPrefix(strings.TrimPrefix(line, "> "), ">")
			}
			lines = append(lines, text)
		default:
			text := line
			if lang == "console" {
				if !strings.HasPrefix(line, "$ ") {
					continue // output
				}
				text = strings.TrimPrefix(line, "$ ")
			}
			trimmed := strings.TrimSpace(text)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			cur = &command{Doc: doc, Line: n, Lang: lang}
			lines = []string{text}
		}
		last := lines[len(lines)-1]
		cont = strings.HasSuffix(stripComment(last), `\`)
		if m := heredocRE.FindStringSubmatch(stripComment(last)); m != nil && m[1] == m[3] {
			heredoc = m[2]
			continue
		}
		if !cont {
			flush()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if inFence {
		return nil, fmt.Errorf("%s: a fenced block is not closed", doc)
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: command not finished (here-document %q or a continuation)", doc, cur.Line, heredoc)
	}
	return cmds, nil
}

// keyOf joins a command's continued first lines (up to a here-document body) into
// one line without comments and with single blanks.
func keyOf(lines []string) string {
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(stripComment(l))
		more := strings.HasSuffix(l, `\`)
		parts = append(parts, strings.TrimSuffix(l, `\`))
		if !more {
			break
		}
	}
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// stripComment removes a trailing shell comment: a # at the start of a word, outside
// quotes.
func stripComment(line string) string {
	var quote rune
	prev := ' '
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return strings.TrimRight(line[:i], " \t")
		}
		prev = r
	}
	return line
}
