#!/usr/bin/env bash
# Checks the call graph of a build against docs/architecture.md: the include
# rules are tests/check-layers.sh's, this is what the objects really link to.
#   - a file uses a file when it references (calls, reads) a global symbol
#     the other defines: `nm` of $BUILD/obj (default build), U against T/D/B/R...;
#   - no cycle between files, no cycle between folders (tsort finds loops);
#   - no call runs up a layer: a folder uses only folders its layer may see
#     (the table of `make print-layers`, as for includes).
# Covered: product code (station/*, db, hsm, ui) and the fixtures' libraries
# (fixtures/board, fixtures/usbemu).  Tests and the tools of fixtures/bin are
# leaves (nothing links against them) and are not read.
# Needs the objects: run it after `make tests`.
#   tests/check-calls.sh           check
#   tests/check-calls.sh --edges   print "file file symbol..." edges
#   tests/check-calls.sh --graph   print "folder folder" edges
# Closing line: "calls: N passed, N failed".
set -u -o pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
obj=$BUILD/obj
mode=${1:-check}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-calls.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

objects=()
for d in "$obj"/station/*/ "$obj"/db/ "$obj"/hsm/ "$obj"/ui/ \
    "$obj"/fixtures/board/ "$obj"/fixtures/usbemu/; do
	for o in "$d"*.o; do
		# an object whose source is gone (moved, deleted) is stale
		s=${o#"$obj"/}
		[ -e "$o" ] && [ -e "${s%.o}.c" ] && objects+=("$o")
	done
done
if [ ${#objects[@]} = 0 ]; then
	echo "calls: no objects under $obj (run make tests first)"
	echo "calls: 0 passed, 1 failed"
	exit 1
fi

# "<file> <file> <symbol>": the first file uses a symbol the second defines.
# nm -P -A prints "<object>: <symbol> <type> ...": an upper-case type but U
# is a global definition (T, D, B, R, W, V, ...), U (and w, v) a reference.
nm -P -A "${objects[@]}" | awk -v obj="$obj/" '
function src(o) {
	sub(/:$/, "", o)
	if (index(o, obj) == 1) o = substr(o, length(obj) + 1)
	sub(/\.o$/, ".c", o)
	return o
}
{
	f = src($1); s = $2; t = $3
	if (t == "U" || t == "w" || t == "v") { nuse++; use[nuse] = f " " s; next }
	if (t !~ /^[A-Z]$/ || t == "N") next
	if (s in def) {
		if (def[s] != f) { dup[s] = dup[s] " " f }
		next
	}
	def[s] = f
}
END {
	for (i = 1; i <= nuse; i++) {
		split(use[i], p, " ")
		if (!(p[2] in def) || def[p[2]] == p[1]) continue
		print p[1], def[p[2]], p[2]
	}
	for (s in dup)
		print s ": " def[s] dup[s] > "/dev/stderr"
}' >"$tmp/syms" 2>"$tmp/dups" || { echo "calls: nm failed on $obj"; echo "calls: 0 passed, 1 failed"; exit 1; }

# file edges with the symbols behind them: "from to sym,sym,..."
awk '{ k = $1 " " $2; if (k in e) e[k] = e[k] "," $3; else e[k] = $3 }
	END { for (k in e) print k, e[k] }' "$tmp/syms" | sort >"$tmp/files"

# The include name of the folder a source lives in, as in check-layers.sh.
folders() {
	awk '
	function folder(p,   a) {
		split(p, a, "/")
		if (a[1] == "station" || a[1] == "fixtures") return (a[1] == "fixtures" ? "fixtures/" : "") a[2]
		return a[1]
	}
	{ f = folder($1); t = folder($2); if (f != t) print f, t }' "$tmp/files" | sort -u
}
folders >"$tmp/folders"

case $mode in
--edges) cat "$tmp/files"; exit 0 ;;
--graph) cat "$tmp/folders"; exit 0 ;;
check) ;;
*) echo "usage: $0 [--edges | --graph]" >&2; exit 2 ;;
esac

pass=0 fail=0
# tsort names the members of each loop it breaks, one per line after
# "input contains a loop:"; print each loop as "a -> b -> ... -> a".
loops() {	# $1: edge file, tsort's report on stdin
	awk -v edges="$1" '
	BEGIN { while ((getline l < edges) > 0) { split(l, e, " "); why[e[1] " " e[2]] = e[3] } }
	/input contains a loop:/ { if (n) flush(); n = 0; next }
	{ sub(/^tsort: /, ""); m[++n] = $0 }
	function flush(   i, s, a, b) {
		s = m[1]
		for (i = 2; i <= n; i++) s = s " -> " m[i]
		print "  " s " -> " m[1]
		for (i = 1; i <= n; i++) {
			a = m[i]; b = m[i % n + 1]
			if ((a " " b) in why && why[a " " b] != "") print "    " a " uses " why[a " " b]
		}
	}
	END { if (n) flush() }'
}
check_dag() {	# $1: what, $2: edge file ("from to ...")
	if awk '{ print $1, $2 }' "$2" | tsort >/dev/null 2>"$tmp/loop"; then
		pass=$((pass + 1))
	else
		echo "cycle between $1 (calls):"
		loops "$2" <"$tmp/loop"
		fail=$((fail + 1))
	fi
}
check_dag files "$tmp/files"
check_dag folders "$tmp/folders"

# calls that run up a layer: the layer table of the build, keyed by the
# folders of the covered sources (fixtures/board is fxboard, and so on).
table=$(make -s --no-print-directory print-layers) || exit 1
if awk -v table="$table" '
BEGIN {
	n = split(table, lines, "\n")
	for (i = 1; i <= n; i++) {
		split(lines[i], kv, ": ")
		if (kv[1] ~ /^dirs /) {
			layer = substr(kv[1], 6)
			m = split(kv[2], ds, " ")
			for (j = 1; j <= m; j++) {
				d = ds[j]; sub(/^station\//, "", d); layer_of[d] = layer
			}
			continue
		}
		m = split(kv[2], fs, " ")
		for (j = 1; j <= m; j++) sees[kv[1] SUBSEP fs[j]] = 1
	}
}
{
	l = layer_of[$1]
	if (!((l SUBSEP $2) in sees)) { print "call runs up a layer: " $1 " uses " $2; bad++ }
}
END { exit bad > 0 }' "$tmp/folders"; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi
# the same symbol defined twice makes an edge ambiguous (and a link fragile)
if [ -s "$tmp/dups" ]; then
	sed 's/^/symbol defined twice: /' "$tmp/dups"
	fail=$((fail + 1))
else
	pass=$((pass + 1))
fi

echo "$(wc -l <"$tmp/files") file edges, $(wc -l <"$tmp/folders") folder edges"
echo "calls: $pass passed, $fail failed"
[ "$fail" = 0 ]
