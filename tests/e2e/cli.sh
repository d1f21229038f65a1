# The station command's contract: help, exit codes 0/1/2, usage on stderr.
set -eu
. "$TOP/tests/lib.sh"

"$STATION" help | grep -q '^commands:'
"$STATION" --help | grep -q 'usage: station'
"$STATION" version | grep -q '^station '
"$STATION" help version | grep -q 'usage: station version'

expect_exit 2 "$STATION"
expect_exit 2 "$STATION" no-such-command
grep -q "unknown command 'no-such-command'" "$ERR"
expect_exit 2 "$STATION" --no-such-flag help
expect_exit 2 "$STATION" version extra
expect_exit 2 "$STATION" help no-such-command
echo "cli: ok"
