# Helpers for end-to-end scripts (sourced).
# expect_exit CODE CMD...: runs CMD, stdout -> $OUT, stderr -> $ERR, asserts exit CODE.
OUT=$PWD/.out; ERR=$PWD/.err
expect_exit() {
	local want=$1 got=0; shift
	"$@" >"$OUT" 2>"$ERR" || got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL: '$*' exited $got, expected $want" >&2
		echo "--- stdout"; cat "$OUT"; echo "--- stderr"; cat "$ERR"
		exit 1
	fi
}
# fail MSG: abort the script with a message.
fail() { echo "FAIL: $*" >&2; exit 1; }
