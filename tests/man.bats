#!/usr/bin/env bats
# Every tool: --help matches its man page SYNOPSIS word for word, the page
# has EXIT STATUS and EXAMPLES, and --version answers.
load helper

tools() {
	local f
	for f in "$REPO_DIR"/cmd/fp-*.c; do basename "$f" .c; done
}

synopsis() {
	LC_ALL=C MANWIDTH=1000 man -l "$1" 2>/dev/null |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' |
		sed 's/^ *//; s/  */ /g' | grep -v '^$'
}

@test "every tool has a man page whose SYNOPSIS matches --help" {
	for t in $(tools); do
		[ -f "$REPO_DIR/man/$t.1" ] || { echo "man/$t.1 is missing"; return 1; }
		want=$(synopsis "$REPO_DIR/man/$t.1")
		got=$("$t" --help | sed 's/^usage: //; s/^ *//; s/  */ /g')
		diff -u <(printf '%s\n' "$want") <(printf '%s\n' "$got") || { echo "in $t"; return 1; }
	done
}

@test "every man page has EXIT STATUS, EXAMPLES and SEE ALSO" {
	for p in "$REPO_DIR"/man/*.[157]; do
		case $p in *.1) ;; *) continue ;; esac
		for s in 'EXIT STATUS' EXAMPLES 'SEE ALSO' ENVIRONMENT; do
			grep -q "^\.Sh $s" "$p" || { echo "$p lacks $s"; return 1; }
		done
	done
}

@test "every tool answers --version and -h, and rejects an unknown option with exit 2" {
	for t in $(tools); do
		run "$t" --version
		[ "$status" -eq 0 ] && [[ $output == "$t (featpipe) "* ]] || { echo "$t --version: $output"; return 1; }
		run "$t" -h
		[ "$status" -eq 0 ] && [[ $output == usage:* ]] || { echo "$t -h: $output"; return 1; }
		run "$t" --no-such-option
		[ "$status" -eq 2 ] || { echo "$t --no-such-option gave $status"; return 1; }
	done
}
