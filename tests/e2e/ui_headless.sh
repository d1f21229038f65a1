# The headless JSON-lines writer end to end (fx-events --headless), and the
# replay tool's handling of bad scripts (FILE:LINE: reason, exit 1).
set -eu
. "$TOP/tests/lib.sh"
script="$TOP/tests/e2e/ui_four_bays.events"

expect_exit 0 "$BUILD/fx-events" --headless --speed 50 "$script"
events=$(grep -cE '^\+' "$script")
lines=$(wc -l < "$OUT")
# every scripted event plus the closing line-stopped, one object per line
[ "$lines" = $((events + 1)) ] || fail "expected $((events + 1)) lines, got $lines"
grep -vqE '^\{"seq":[0-9]+,"t_ms":[0-9]+,"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z","kind":"[a-z-]+",.*\}$' "$OUT" &&
	fail "a line is not a headless event object: $(grep -vE '^\{"seq"' "$OUT" | head -1)"
grep -q '"kind":"unit-result","bay_index":1,"bay":"1-1.2","unique_id":"0A1B2C3D4E5F60718293A4B6","stage":"flash","outcome":"fail","reason":"board stopped answering while writing the image","reason_code":"board_timeout"}$' "$OUT" ||
	fail "FAIL result missing or malformed"
grep -q '"kind":"unit-result","bay_index":0,"bay":"1-1.1","unique_id":"0A1B2C3D4E5F60718293A4B5","stage":"commit","outcome":"pass","reason":null,"unit_id":1}$' "$OUT" ||
	fail "PASS result missing or malformed"
grep -q '"kind":"progress",.*"done":250,"total":1000,"progress":0.25}$' "$OUT" || fail "progress line missing"
tail -1 "$OUT" | grep -q '"kind":"line-stopped","bay_index":-1,"bay":null' || fail "last line is not line-stopped"
# seq strictly increasing from 1
awk -F'[:,]' '{ if ($2 != NR) exit 1 }' "$OUT" || fail "seq is not 1..N in order"

# A consumer closing the pipe early: fx-events ends (SIGPIPE), it does not hang.
timeout 10 "$BUILD/fx-events" --headless --speed 50 "$script" | head -1 | grep -q '"seq":1,' ||
	fail "first line missing"

# Bad scripts name the file and line.
printf '+0 line-started\n+10 bay-arrived bay_index=0\n+5 no-such-kind\n' > bad.events
expect_exit 1 "$BUILD/fx-events" --headless bad.events
grep -q '^fx-events: bad.events:3: unknown event kind$' "$ERR" || fail "bad kind: $(cat "$ERR")"
printf '+0 log reason="unterminated\n' > bad.events
expect_exit 1 "$BUILD/fx-events" --headless bad.events
grep -q 'bad.events:1: unterminated quote' "$ERR" || fail "quote: $(cat "$ERR")"
printf '# ok\n\n+0 unit-result bay_index=16\n' > bad.events
expect_exit 1 "$BUILD/fx-events" --headless bad.events
grep -q 'bad.events:3: bay_index must be -1..15' "$ERR" || fail "range: $(cat "$ERR")"
printf '+0 progress bay_index=0 done=-4\n' > bad.events
expect_exit 1 "$BUILD/fx-events" --headless bad.events
grep -q 'bad.events:1: not a number' "$ERR" || fail "number: $(cat "$ERR")"
expect_exit 1 "$BUILD/fx-events" --headless no-such.events
expect_exit 2 "$BUILD/fx-events"
expect_exit 2 "$BUILD/fx-events" --speed 0 "$script"
# The screen needs a terminal: a clear error, not a garbled pipe.
expect_exit 1 "$BUILD/fx-events" "$script" </dev/null
grep -q 'needs a terminal' "$ERR" || fail "no-tty: $(cat "$ERR")"
echo "ui_headless: ok"
