# Invariant 6: a misbehaving board fails its own bay, never hangs or crashes
# the station, and never blocks the other bays.  Five bays over emulated USB:
# two healthy boards, and three that misbehave for good: one loses power at
# key generation (it never answers again), one never replies to GET_CSR, one
# halts its IN endpoint at every ATTEST.  The healthy boards must PASS while
# the one that never replies is still timing out (not waiting behind it); each
# misbehaving board FAILs at its own stage with a reason; the station ends the
# run by itself, in bounded time, with exit 0; no certificate is left pending.
set -eu
. "$TOP/tests/lib.sh"
. "$TOP/tests/invariant-lib.sh"

inv_bench LB 5
b() { sed -n "$(($1 + 1))p" mfg/LB-boards.csv | cut -d, -f1; }
"$BUILD/fx-board" set "$(b 3)" power_loss_at genkey >/dev/null
"$BUILD/fx-board" set "$(b 4)" drop_reply get_csr drop_reply_count 0 >/dev/null
"$BUILD/fx-board" set "$(b 5)" stall_in attest stall_in_count 0 >/dev/null
bargs=()
for i in 1 2 3 4 5; do bargs+=(--board "1-$i=$PWD/$(b $i)"); done

t0=$SECONDS
rc=0
timeout 90 "$BUILD/fx-usbemu" --quiet "${bargs[@]}" -- "$STATION" --db st.db --station-id inv-1 \
	--user op run --profile inv --lot LB --headless --bays 5 --max-units 5 > events.jsonl 2> run.err || rc=$?
took=$((SECONDS - t0))
[ "$rc" = 0 ] || fail "station run exited $rc after $took s: $(tail -5 run.err)"
[ "$(grep -c '"kind":"unit-result"' events.jsonl)" = 5 ] || fail "expected 5 results: $(tail -3 run.err)"

verdict() { q "SELECT status || ' ' || stage FROM units WHERE unique_id='$(inv_uid "$(b $1)")'"; }
reason() { q "SELECT reason FROM units WHERE unique_id='$(inv_uid "$(b $1)")'"; }
for i in 1 2; do
	[ "$(verdict $i)" = "pass commit" ] || fail "healthy board $i: $(verdict $i) ($(reason $i))"
done
[ "$(verdict 3)" = "fail keygen" ] || fail "board 3 (power loss at keygen): $(verdict 3) ($(reason 3))"
[ "$(verdict 4)" = "fail csr" ] || fail "board 4 (no CSR reply): $(verdict 4) ($(reason 4))"
[ "$(verdict 5)" = "fail attest" ] || fail "board 5 (stalled at attest): $(verdict 5) ($(reason 5))"
for i in 3 4 5; do
	r=$(reason $i)
	[ ${#r} -ge 10 ] || fail "board $i failed without a reason: '$r'"
	grep '"kind":"unit-result"' events.jsonl | grep "\"bay\":\"1-$i\"" | grep -q '"outcome":"fail"' ||
		fail "bay 1-$i: no FAIL result event"
done
# the healthy bays were not held up by the board that hangs (1-4: every
# GET_CSR times out, then is retried): both passed before it failed, in a
# fraction of its time
res_line() { grep -n '"kind":"unit-result"' events.jsonl | grep "\"bay\":\"$1\"" | cut -d: -f1; }
took_ms() { q "SELECT finished_ms - started_ms FROM units WHERE bay='$1'"; }
hung=$(took_ms 1-4)
[ "$hung" -ge 4000 ] || fail "the hanging board failed in $hung ms: did its fault fire?"
for p in 1-1 1-2; do
	[ "$(res_line $p)" -lt "$(res_line 1-4)" ] || fail "bay $p finished only after the hanging board"
	[ $(($(took_ms $p) * 2)) -lt "$hung" ] ||
		fail "bay $p took $(took_ms $p) ms, the hanging board $hung ms: held up?"
done
# nothing pending; the failed boards got no certificate
[ "$(q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
	fail "certificates left pending"
[ "$(q "SELECT count(*) FROM units WHERE status='in-progress'")" = 0 ] || fail "a unit left in progress"
expect_exit 0 S audit verify
echo "invariant_bays: ok (2 pass, 3 fail at keygen/csr/attest, $took s)"
