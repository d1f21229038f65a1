# The ledger over TLS with sslmode=verify-full, as docs/factory.md tells a
# remote station to connect: a throwaway PostgreSQL on a loopback TCP port
# with a server certificate from a test CA, TLS required by pg_hba.conf.
# A station that pins the CA reaches it (init, status, push); one that pins
# another CA, or names a host the certificate is not for, or asks for no TLS,
# is refused with one line.
set -eu
. "$TOP/tests/lib.sh"
. "$TOP/tests/ledger-lib.sh"

pg_up
# ---- a CA, and a server certificate for "localhost" only (no IP SAN) -------
mkcert() {   # mkcert NAME SUBJECT [CA]: NAME.key, NAME.pem
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
		-keyout "$1.key" -out "$1.csr" 2>/dev/null
	if [ -n "${3:-}" ]; then
		printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$1.ext"
		openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
			-days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	else
		openssl x509 -req -in "$1.csr" -signkey "$1.key" -days 2 -out "$1.pem" \
			-extfile <(printf 'basicConstraints=critical,CA:true\nkeyUsage=keyCertSign\n') \
			2>/dev/null
	fi
}
mkcert ca "/CN=Ledger Test CA"
mkcert other "/CN=Some Other CA"
mkcert server "/CN=localhost" ca
cp server.pem server.key "$PGDIR/data/"
chmod 600 "$PGDIR/data/server.key"
[ "$(id -u)" != 0 ] || chown postgres "$PGDIR/data/server.pem" "$PGDIR/data/server.key"
# TLS is for TCP only: the test's socket stays for psql_ledger, loopback TCP
# requires TLS and refuses plain connections (first match wins: these first)
{ echo "hostssl all all 127.0.0.1/32 scram-sha-256"
  echo "hostnossl all all 127.0.0.1/32 reject"
  cat "$PGDIR/data/pg_hba.conf"; } > hba.conf
cat hba.conf > "$PGDIR/data/pg_hba.conf"
port=0
for p in $(shuf -i 20000-60000 -n 20); do
	ss -Hltn "sport = :$p" | grep -q . || { port=$p; break; }
done
[ "$port" != 0 ] || fail "no free TCP port"
pg_stop
PG_OPTS="-c listen_addresses=127.0.0.1 -c port=$port -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key"
pg_start
# the socket's name follows the port
LEDGER="host=$PGDIR port=$port dbname=postgres user=station"

TLS="host=localhost port=$port dbname=postgres user=station sslmode=verify-full"
one_line() {   # the command failed with exactly one line matching $1
	grep -q -- "$1" "$ERR" || fail "expected '$1': $(cat "$ERR")"
	[ "$(wc -l < "$ERR")" = 1 ] || fail "more than one line: $(cat "$ERR")"
}

# ---- the right CA and host: the ledger is reached over TLS ------------------
expect_exit 0 "$STATION" ledger init --ledger "$TLS sslrootcert=$PWD/ca.pem" \
	--ledger-password-file "$LEDGER_PW"
grep -q "version 0 -> " "$OUT" || fail "init over TLS: $(cat "$OUT")"
new_db st.db tls-A
expect_exit 0 "$STATION" --db st.db ledger push --ledger "$TLS sslrootcert=$PWD/ca.pem" \
	--ledger-password-file "$LEDGER_PW"
# (loopback TCP takes TLS only, pg_hba.conf above: this push went over TLS)
[ "$(psql_ledger "SELECT count(*) > 0 FROM events WHERE station_id = 'tls-A'")" = t ] ||
	fail "push over TLS left no chain in the ledger"
expect_exit 0 "$STATION" ledger status --ledger "$TLS sslrootcert=$PWD/ca.pem" \
	--ledger-password-file "$LEDGER_PW"
grep -q "^tls-A " "$OUT" || fail "status over TLS: $(cat "$OUT")"

# ---- refused, one line each --------------------------------------------------
# a server certificate from a CA the station does not pin
expect_exit 1 "$STATION" ledger status --ledger "$TLS sslrootcert=$PWD/other.pem" \
	--ledger-password-file "$LEDGER_PW"
one_line "ledger unreachable (connect):.*certificate verify failed"
# the certificate is for localhost, not for the address the station names
expect_exit 1 "$STATION" ledger status --ledger \
	"host=127.0.0.1 port=$port dbname=postgres user=station sslmode=verify-full sslrootcert=$PWD/ca.pem" \
	--ledger-password-file "$LEDGER_PW"
one_line "ledger unreachable (connect):.*does not match host name \"127.0.0.1\""
# no TLS at all: the server's pg_hba.conf refuses it
expect_exit 1 "$STATION" ledger status --ledger \
	"host=127.0.0.1 port=$port dbname=postgres user=station sslmode=disable" \
	--ledger-password-file "$LEDGER_PW"
one_line "ledger unreachable (connect):.*no encryption"
# verify-full without a CA to pin (no ~/.postgresql/root.crt): refused before
# any password is sent
HOME=$PWD expect_exit 1 "$STATION" ledger status --ledger "$TLS" --ledger-password-file "$LEDGER_PW"
one_line "ledger unreachable (connect):.*root certificate file"
echo "ok ledger_tls"
