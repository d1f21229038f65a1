# A throwaway PostgreSQL for the ledger's tests: its own cluster in a temp
# directory, reached only over a unix socket there (no TCP port, so tests in
# other checkouts never meet it), with a password (scram-sha-256).  initdb
# refuses to run as root, so as root the cluster belongs to the postgres user.
# Sourced after tests/lib.sh.
#
# pg_up              makes and starts the cluster; sets LEDGER (the connection
#                    string, no password) and LEDGER_PW (a 0600 password file
#                    in the scratch directory); a trap removes it all on exit
# pg_stop [MODE]     stops the server (fast, or immediate)
# pg_start           starts it again (waits until it accepts connections)
# psql_ledger SQL    one statement as the ledger's owner
# PG_OPTS            more server options for pg_start (e.g. TLS on a TCP port,
#                    tests/e2e/ledger_tls.sh)
# LEDGER_KEEP=1      pg_up sets no trap: the caller removes it (pg_gone), as
#                    tests/ledger-pg.sh does for the unit tests

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

pg_as() {
	# from / : the postgres user may not enter the scratch directory
	if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_up() {
	[ -x "$PGBIN/initdb" ] || fail "PostgreSQL 15 is needed (apt-get install postgresql-15)"
	PGDIR=$(mktemp -d /tmp/station-ledger.XXXXXX)
	chmod 755 "$PGDIR"
	LEDGER_SECRET=$(openssl rand -hex 16)
	printf '%s\n' "$LEDGER_SECRET" > "$PGDIR/pw"
	[ "$(id -u)" != 0 ] || chown -R postgres "$PGDIR"
	pg_as "$PGBIN/initdb" -D "$PGDIR/data" -U station -A scram-sha-256 \
		--pwfile="$PGDIR/pw" >"$PGDIR/initdb.log" 2>&1 || fail "initdb: $(cat "$PGDIR/initdb.log")"
	rm -f "$PGDIR/pw"
	[ -n "${LEDGER_KEEP:-}" ] || trap 'pg_gone' EXIT
	pg_start
	LEDGER="host=$PGDIR port=5432 dbname=postgres user=station"
	LEDGER_PW=$PWD/ledger.pw
	(umask 077; printf '%s\n' "$LEDGER_SECRET" > "$LEDGER_PW")
}

pg_start() {
	pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 20 \
		-o "-k $PGDIR -c listen_addresses= -c fsync=off ${PG_OPTS:-}" start >/dev/null ||
		fail "postgres did not start: $(tail -5 "$PGDIR/log")"
}

pg_stop() {
	pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" -m "${1:-fast}" -w -t 20 stop >/dev/null 2>&1 || true
}

pg_gone() {
	[ -n "${PGDIR:-}" ] || return 0
	pg_stop immediate
	rm -rf "$PGDIR"
}

psql_ledger() {
	PGPASSWORD=$LEDGER_SECRET psql -X -q -t -A -d "$LEDGER" -c "$1"
}
