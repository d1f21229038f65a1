# The operator's screen, read from across the bench (issue 14), driven by
# fx-events in tmux at 80x24, 100x30 and 160x50, in colour and on a monochrome
# TERM=vt100, captured with the escapes: PASS, FAIL and REJECT carry three
# different attribute sets, block letters where the tile is tall enough, no id
# broken, an action on every FAIL/REJECT tile, a board plugged while paused
# waits (not in flight), the bell rings on REJECT (not with --no-bell), the
# summary opens, and a lot scanned with l is refused or taken.
set -eu
. "$TOP/tests/lib.sh"
command -v tmux >/dev/null || fail "tmux is not installed (make deps)"

sock="ui-v-$$"
tm() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'tm kill-server 2>/dev/null || true' EXIT
ev="$TOP/tests/e2e/ui_verdicts.events"

wait_for() {     # SESSION PATTERN
	local n=1200
	while [ $n -gt 0 ]; do
		tm capture-pane -p -t "$1" | grep -qE -- "$2" && return 0
		sleep 0.05; n=$((n - 1))
	done
	tm capture-pane -p -t "$1"; fail "$1: screen never showed /$2/"
}

# attrs SESSION PATTERN: the escapes in force where PATTERN starts on its row.
attrs() {
	tm capture-pane -e -p -t "$1" | perl -ne '
		BEGIN { $p = shift @ARGV }
		if (/$p/) { my $pre = $`; my @e = ($pre =~ /(\e\[[0-9;]*m)/g);
			my $i = $#e; $i-- while $i > 0 && $e[$i] ne "\e[0m" && $e[$i] ne "\e[m";
			print join("", @e[$i .. $#e]), "\n"; exit }' "$2"
}

check() {        # NAME COLS LINES TERM
	local s=$1 w=$2 h=$3 term=$4 p a_pass a_fail a_rej
	tm new-session -d -s "$s" -x "$w" -y "$h" \
		"env TERM=$term TZ=UTC LC_ALL=C '$BUILD/fx-events' '$ev'; sleep 30"
	wait_for "$s" 'script done'
	sleep 0.2
	p=$(tm capture-pane -p -t "$s")
	for want in 'put it in the rework tray' 'do not retry: put it in the QA tray' \
		    'why: board refused to lock' 'why: already done before' 'unplug, plug the next' \
		    'waiting \(paused\)' 'in flight 0' 'PASS 1 +FAIL 1 +REJECT 1' \
		    '[0-9]{2}:[0-9]{2}:[0-9]{2} UTC' 'P 0  F 1  R 0' '#+ +FAIL|FFFF' '/+ REJECT /+|RRRR'; do
		printf '%s\n' "$p" | grep -qE -- "$want" || { echo "$p"; fail "$s: '$want' missing"; }
	done
	# an id is shown whole or not at all, and once per line
	# (block letters are runs of one letter: not ids)
	printf '%s\n' "$p" | grep -oE '[0-9A-F]{8,}' | grep -vE '^(.)\1+$' |
		awk 'length($0) != 24 { exit 1 }' ||
		{ echo "$p"; fail "$s: an id is broken"; }
	printf '%s\n' "$p" | grep -E 'ED51C5A409BD6DEC85878388.*ED51C5A409BD6DEC85878388' &&
		fail "$s: an id shown twice on one line"
	printf '%s\n' "$p" | awk -v w="$w" 'length($0) > w { exit 1 }' || fail "$s: wider than $w"
	if [ "$h" -ge 30 ]; then
		for big in 'PPPP' 'FFFF' 'RRRR +EEEE'; do
			printf '%s\n' "$p" | grep -qE "$big" || { echo "$p"; fail "$s: no block letters $big"; }
		done
		a_pass=$(attrs "$s" 'PPPP'); a_fail=$(attrs "$s" 'FFFF'); a_rej=$(attrs "$s" 'RRRR')
	else
		a_pass=$(attrs "$s" ' PASS  '); a_fail=$(attrs "$s" 'FAIL  +#'); a_rej=$(attrs "$s" 'REJECT /')
	fi
	[ -n "$a_pass" ] && [ -n "$a_fail" ] && [ -n "$a_rej" ] || fail "$s: a verdict without attributes"
	[ "$a_pass" != "$a_fail" ] && [ "$a_fail" != "$a_rej" ] && [ "$a_pass" != "$a_rej" ] ||
		fail "$s: verdicts share attributes: $(printf '%q ' "$a_pass" "$a_fail" "$a_rej")"
	tm kill-session -t "$s"
}

for size in "80 24" "100 30" "160 50"; do
	set -- $size
	check "c$1" "$1" "$2" screen
	check "m$1" "$1" "$2" vt100
done

# The bell: rung on the REJECT, silent with --no-bell; the summary; a lot scan.
# (the replay starts 1.5 s late: the pane is piped to a file before anything is drawn)
tm new-session -d -s bell -x 100 -y 30 "sleep 1.5; exec '$BUILD/fx-events' '$ev'"
tm pipe-pane -t bell -o "cat > '$PWD/bell.raw'"
wait_for bell 'script done'
wait_for bell 'ATTENTION: REJECT'     # the flash, for 3 s
tm new-session -d -s quiet -x 100 -y 30 "sleep 1.5; exec '$BUILD/fx-events' --no-bell '$ev'"
tm pipe-pane -t quiet -o "cat > '$PWD/quiet.raw'"
wait_for quiet 'script done'
sleep 0.3
grep -q "$(printf '\a')" bell.raw || fail "no bell on REJECT"
grep -q "$(printf '\a')" quiet.raw && fail "a bell with --no-bell"

tm send-keys -t bell s
wait_for bell 'SHIFT SUMMARY'
wait_for bell 'already done before +1  already_provisioned'
wait_for bell 'ann +1 +1 +1'
tm send-keys -t bell s
# the replay is paused: l asks for the lot, an unknown one is refused on screen
tm send-keys -t bell l
wait_for bell 'NEW LOT>'
tm send-keys -t bell 'NOPE-1' Enter
wait_for bell 'unknown lot NOPE-1: scan again'
tm send-keys -t bell 'LOT-0050' Enter
wait_for bell 'lot LOT-0050 '
wait_for bell 'lot changed to LOT-0050'
echo "ui_verdicts: ok"
