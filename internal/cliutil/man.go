package cliutil

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// ManPage is what a binary's man page says beyond its help: the files it
// reads and writes, its exit statuses, and related pages. Description is
// the help's description without these; WithManPage adds them to both.
type ManPage struct {
	Description string
	Help        string       // the --help description, when it differs from Description
	Sections    []ManSection // after DESCRIPTION, e.g. the directives of momgate-qmgr
	Files       []ManItem    // TERM: a path, TEXT: what it is
	ExitStatus  []ManItem    // TERM: a status, TEXT: what it means
	SeeAlso     []string     // pages, e.g. "momgate-server(8)"; docs are listed by path
}

// ManItem is one entry of a FILES or EXIT STATUS section.
type ManItem struct{ Term, Text string }

// ManSection is a section of tagged paragraphs.
type ManSection struct {
	Title string // in capitals
	Items []ManItem
}

// ManDate is the date the man pages carry: the month of their last
// revision, changed by hand with them.
const ManDate = "2026-12-01"

// WithManPage completes app with page: its description (with FILES and
// EXIT STATUS as plain text, for --help) and the `man` command, which
// prints the man page.
func WithManPage(app *cli.App, page ManPage) *cli.App {
	desc := page.Description
	if page.Help != "" {
		desc = page.Help
	}
	app.Description = desc + page.helpText()
	app.Commands = append(app.Commands, manCommand(app.Name, page))
	return app
}

// helpText is the FILES and EXIT STATUS sections as --help shows them.
func (p ManPage) helpText() string {
	var b strings.Builder
	section := func(title string, items []ManItem) {
		if len(items) == 0 {
			return
		}
		width := 0
		for _, it := range items {
			width = max(width, len(it.Term))
		}
		fmt.Fprintf(&b, "\n\n%s:\n", title)
		for i, it := range items {
			if i > 0 {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "    %-*s  %s", width, it.Term, it.Text)
		}
	}
	section("Files", p.Files)
	section("Exit status", p.ExitStatus)
	if len(p.SeeAlso) > 0 {
		fmt.Fprintf(&b, "\n\nSee also: %s.", strings.Join(p.SeeAlso, ", "))
	}
	return b.String()
}

func manCommand(binary string, page ManPage) *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the man page (roff); read it with: " + binary + " man | man -l -",
		Description: "Prints the manual page, section 8, to standard output. make install puts it in place;\n" +
			"without it:\n\n    " + binary + " man | man -l -",
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("man takes no arguments")
			}
			_, err := fmt.Fprint(c.App.Writer, RenderMan(c.App, page))
			return err
		},
	}
}

// RenderMan writes app's man page (section 8) in roff with the man
// macros: NAME, SYNOPSIS (the usage text), DESCRIPTION, COMMANDS, OPTIONS
// with their environment variables and defaults, FILES, EXIT STATUS and
// SEE ALSO.
func RenderMan(app *cli.App, page ManPage) string {
	var b strings.Builder
	title := strings.ToUpper(app.Name)
	fmt.Fprintf(&b, ".TH %s 8 \"%s\" \"momgate\" \"System Administration\"\n", roffEscape(title), ManDate)
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roffEscape(app.Name), roffEscape(app.Usage))

	b.WriteString(".SH SYNOPSIS\n.nh\n.ad l\n")
	for i, line := range synopsis(app) {
		if i > 0 {
			b.WriteString(".br\n")
		}
		synopsisLine(&b, app.Name, strings.TrimSpace(line))
	}
	b.WriteString(".ad\n.hy\n")

	b.WriteString(".SH DESCRIPTION\n")
	paragraphs(&b, page.Description, "")
	for _, sec := range page.Sections {
		fmt.Fprintf(&b, ".SH %s\n", roffEscape(sec.Title))
		for _, it := range sec.Items {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffEscape(it.Term), roffLine(roffEscape(it.Text)))
		}
	}

	var cmds []*cli.Command
	for _, c := range app.Commands {
		if !c.Hidden && c.Name != "help" {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range cmds {
			commandEntry(&b, app.Name, c, nil)
		}
	}
	if flags := visibleFlags(app.Flags); len(flags) > 0 {
		b.WriteString(".SH OPTIONS\n")
		for _, f := range flags {
			flagEntry(&b, f)
		}
	}
	if envs := environment(app); len(envs) > 0 {
		b.WriteString(".SH ENVIRONMENT\n")
		for _, e := range envs {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffEscape(e.Term), roffEscape(e.Text))
		}
	}
	items := func(title string, list []ManItem, bold bool) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintf(&b, ".SH %s\n", title)
		for _, it := range list {
			font := "I"
			if bold {
				font = "B"
			}
			fmt.Fprintf(&b, ".TP\n.%s %s\n%s\n", font, roffEscape(it.Term), roffEscape(it.Text))
		}
	}
	items("FILES", page.Files, false)
	items("EXIT STATUS", page.ExitStatus, true)
	if len(page.SeeAlso) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range page.SeeAlso {
			sep := ","
			if i == len(page.SeeAlso)-1 {
				sep = ""
			}
			if open := strings.IndexByte(s, '('); open > 0 && strings.HasSuffix(s, ")") {
				fmt.Fprintf(&b, ".BR %s %s%s\n", roffEscape(s[:open]), roffEscape(s[open:]), sep)
			} else {
				fmt.Fprintf(&b, "%s%s\n", roffEscape(s), sep)
			}
		}
	}
	return b.String()
}

// synopsis is the app's usage text, or one line per command.
func synopsis(app *cli.App) []string {
	if strings.TrimSpace(app.UsageText) != "" {
		return strings.Split(strings.TrimSpace(app.UsageText), "\n")
	}
	var out []string
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		line := app.Name + " " + c.Name
		if len(visibleFlags(c.Flags)) > 0 {
			line += " [options]"
		}
		if a := strings.TrimSpace(c.ArgsUsage); a != "" {
			line += " " + a
		}
		out = append(out, line)
	}
	return out
}

// synopsisLine writes one usage line with the program name in bold and
// the rest in roman; words in capitals (placeholders) are italic.
func synopsisLine(b *strings.Builder, name, line string) {
	rest, ok := strings.CutPrefix(line, name)
	if !ok {
		fmt.Fprintf(b, "%s\n", roffLine(line))
		return
	}
	fmt.Fprintf(b, ".B %s\n", roffEscape(name))
	if rest = strings.TrimSpace(rest); rest != "" {
		fmt.Fprintf(b, "%s\n", roffLine(italicPlaceholders(rest)))
	}
}

// italicPlaceholders sets words written in capitals (DIR, FILE,
// DIRECTIVE) in italics.
func italicPlaceholders(s string) string {
	var b strings.Builder
	word := func(w string) {
		upper := len(w) > 1
		for _, r := range w {
			if !(r >= 'A' && r <= 'Z' || r == '_') {
				upper = false
			}
		}
		if upper {
			b.WriteString(`\fI` + w + `\fR`)
		} else {
			b.WriteString(roffEscape(w))
		}
	}
	start := -1
	for i, r := range s {
		isWord := r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '_' || r >= '0' && r <= '9'
		switch {
		case isWord && start < 0:
			start = i
		case !isWord && start >= 0:
			word(s[start:i])
			start = -1
		}
		if !isWord {
			b.WriteString(roffEscape(string(r)))
		}
	}
	if start >= 0 {
		word(s[start:])
	}
	return b.String()
}

// paragraphs renders help text, the first paragraph opened with first:
// blank lines separate paragraphs; a
// paragraph whose lines are indented (examples, tables) is kept as
// written, the others are filled. A paragraph that is one short line
// ending in ':' (a heading inside the help) is set in bold.
func paragraphs(b *strings.Builder, text string, first string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		lines := strings.Split(strings.TrimRight(para, "\n"), "\n")
		pp := ".PP\n"
		if i == 0 {
			pp = first // right after .SH a paragraph has begun
		}
		switch {
		case allIndented(lines):
			b.WriteString(pp + ".RS 4\n.nf\n")
			indent := commonIndent(lines)
			for _, l := range lines {
				if len(l) >= indent {
					l = l[indent:]
				}
				fmt.Fprintf(b, "%s\n", roffLine(roffEscape(l)))
			}
			b.WriteString(".fi\n.RE\n")
		case len(lines) > 1 && !strings.HasPrefix(lines[0], " ") && allIndented(lines[1:]):
			// "Heading:" followed by an indented block.
			fmt.Fprintf(b, "%s%s\n.RS 4\n.nf\n", pp, roffLine(roffEscape(lines[0])))
			indent := commonIndent(lines[1:])
			for _, l := range lines[1:] {
				if len(l) >= indent {
					l = l[indent:]
				}
				fmt.Fprintf(b, "%s\n", roffLine(roffEscape(l)))
			}
			b.WriteString(".fi\n.RE\n")
		default:
			b.WriteString(pp)
			for _, l := range lines {
				fmt.Fprintf(b, "%s\n", roffLine(roffEscape(strings.TrimSpace(l))))
			}
		}
	}
}

func allIndented(lines []string) bool {
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, " ") {
			return false
		}
	}
	return len(lines) > 0
}

func commonIndent(lines []string) int {
	n := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		i := len(l) - len(strings.TrimLeft(l, " "))
		if n < 0 || i < n {
			n = i
		}
	}
	return max(n, 0)
}

// commandEntry writes a command (and its subcommands) as a tagged
// paragraph with its own options.
func commandEntry(b *strings.Builder, prog string, c *cli.Command, parents []string) {
	path := append(append([]string{}, parents...), c.Name)
	head := strings.Join(path, " ")
	if c.ArgsUsage != "" && strings.TrimSpace(c.ArgsUsage) != "" {
		head += " " + c.ArgsUsage
	}
	fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roffEscape(head), roffLine(roffEscape(c.Usage)))
	if c.Description != "" {
		b.WriteString(".RS\n")
		paragraphs(b, strings.ReplaceAll(c.Description, "BINARY", prog), ".PP\n")
		b.WriteString(".RE\n")
	}
	if flags := visibleFlags(c.Flags); len(flags) > 0 {
		b.WriteString(".RS\n")
		for _, f := range flags {
			flagEntry(b, f)
		}
		b.WriteString(".RE\n")
	}
	for _, sub := range c.Subcommands {
		if !sub.Hidden && sub.Name != "help" {
			b.WriteString(".RS\n")
			commandEntry(b, prog, sub, path)
			b.WriteString(".RE\n")
		}
	}
}

func visibleFlags(flags []cli.Flag) []cli.DocGenerationFlag {
	var out []cli.DocGenerationFlag
	for _, f := range flags {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() || f.Names()[0] == "help" {
			continue
		}
		out = append(out, df)
	}
	return out
}

// flagEntry writes one option: its names and placeholder, its usage, the
// environment variables that set it and its default.
func flagEntry(b *strings.Builder, f cli.DocGenerationFlag) {
	placeholder, usage := unquoteUsage(f.GetUsage())
	if placeholder == "" && f.TakesValue() {
		placeholder = "VALUE"
	}
	var names []string
	for _, n := range f.Names() {
		dash := "\\-\\-"
		if len(n) == 1 {
			dash = "\\-"
		}
		name := `\fB` + dash + roffEscape(n) + `\fR`
		if placeholder != "" {
			name += ` \fI` + roffEscape(placeholder) + `\fR`
		}
		names = append(names, name)
	}
	fmt.Fprintf(b, ".TP\n%s\n%s", roffLine(strings.Join(names, ", ")), roffLine(roffEscape(usage)))
	if def := f.GetValue(); f.TakesValue() && def != "" && def != "0" && def != "0s" {
		fmt.Fprintf(b, " (default: %s)", roffEscape(def))
	}
	b.WriteString("\n")
	if envs := f.GetEnvVars(); len(envs) > 0 {
		vars := make([]string, len(envs))
		for i, e := range envs {
			vars[i] = `\fB` + roffEscape(e) + `\fR`
		}
		fmt.Fprintf(b, ".br\nEnvironment: %s.\n", strings.Join(vars, ", "))
	}
}

// environment lists every environment variable of the app's and its
// commands' options, with the option it sets.
func environment(app *cli.App) []ManItem {
	seen := map[string]string{}
	var walk func(prefix string, flags []cli.Flag)
	walk = func(prefix string, flags []cli.Flag) {
		for _, f := range visibleFlags(flags) {
			for _, e := range f.GetEnvVars() {
				if _, ok := seen[e]; !ok {
					seen[e] = prefix + "--" + f.Names()[0]
				}
			}
		}
	}
	walk("", app.Flags)
	var cmds func(prefix string, list []*cli.Command)
	cmds = func(prefix string, list []*cli.Command) {
		for _, c := range list {
			if c.Hidden {
				continue
			}
			walk(prefix+c.Name+" ", c.Flags)
			cmds(prefix+c.Name+" ", c.Subcommands)
		}
	}
	cmds("", app.Commands)
	names := make([]string, 0, len(seen))
	for e := range seen {
		names = append(names, e)
	}
	sort.Strings(names)
	out := make([]ManItem, len(names))
	for i, e := range names {
		out[i] = ManItem{Term: e, Text: "sets " + seen[e] + "; the option given on the command line wins."}
	}
	return out
}

// unquoteUsage splits "... `NAME` ..." into the placeholder NAME and the
// usage without back quotes, as urfave/cli's help does.
func unquoteUsage(usage string) (string, string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

// roffEscape makes text safe inside a roff line: backslashes, and
// hyphens that are options or code rather than words.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// roffLine keeps a line from being read as a request: one starting with
// '.' or '\” gets a zero-width escape in front.
func roffLine(s string) string {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		return `\&` + s
	}
	return s
}
