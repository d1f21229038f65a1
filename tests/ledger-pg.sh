#!/usr/bin/env bash
# A throwaway PostgreSQL for a unit test (tests/unit/ledger/): 
#   tests/ledger-pg.sh up DIR    starts one; writes DIR/conninfo, DIR/pgdir and
#                                DIR/ledger.pw (mode 0600)
#   tests/ledger-pg.sh down DIR  stops it and removes its cluster
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib.sh"
. "$top/tests/ledger-lib.sh"
cd "$2"
case $1 in
up)
	LEDGER_KEEP=1 pg_up
	printf '%s' "$LEDGER" > conninfo
	printf '%s' "$PGDIR" > pgdir ;;
down)
	PGDIR=$(cat pgdir)
	pg_gone ;;
*) fail "up or down" ;;
esac
