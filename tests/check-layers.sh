#!/usr/bin/env bash
# Checks the layering rules of docs/architecture.md from the sources, with the
# layer table the build uses (`make print-layers`, the one owner of the rules):
#   - every project include names its folder ("db/db.h"), never "..";
#   - a file includes only folders its layer may see;
#   - a private header (*_int.h) is included only from its own folder and
#     that folder's unit tests (tests/unit/<folder>/);
#   - no cycle between folders, nor between files (header includes);
#   - no folder inside station/ holds more than 30% of the product's lines.
# `tests/check-layers.sh --graph` prints the edges between folders.
# Closing line: "layers: N passed, N failed".
set -u -o pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
table=$(make -s --no-print-directory print-layers) || exit 1
mode=${1:-check}

# One line per include: "<file> <layer> <folder> <included path>".
includes() {
	local layer dirs d f
	while read -r kw layer dirs; do
		[ "$kw" = dirs ] || continue
		layer=${layer%:}
		[ "$layer" = tests ] && dirs="$dirs tests/fuzz"
		for d in $dirs; do
			for f in "$d"/*.[ch]; do
				[ -e "$f" ] || continue
				sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
				while read -r inc; do echo "$f $layer $inc"; done
			done
		done
	done <<<"$table"
}

includes | awk -v mode="$mode" -v table="$table" '
function folder_of_path(p,   n, parts) {
	# the include name of the folder a source path lives in
	if (p ~ /^station\//) { split(p, parts, "/"); return parts[2] }
	if (p ~ /^fixtures\//) { split(p, parts, "/"); return "fixtures/" parts[2] }
	if (p ~ /^tests\//) return "tests"
	split(p, parts, "/"); return parts[1]
}
function folder_of_inc(inc,   parts) {
	if (inc ~ /^fixtures\//) { split(inc, parts, "/"); return "fixtures/" parts[2] }
	split(inc, parts, "/"); return parts[1]
}
function path_of_inc(inc,   f) {
	f = folder_of_inc(inc)
	if (f ~ /^(db|hsm|ui|tests)$/ || f ~ /^fixtures\//) return inc
	return "station/" inc
}
BEGIN {
	n = split(table, lines, "\n")
	for (i = 1; i <= n; i++) {
		if (lines[i] ~ /^dirs /) continue
		split(lines[i], kv, ": ")
		m = split(kv[2], fs, " ")
		for (j = 1; j <= m; j++) { sees[kv[1] SUBSEP fs[j]] = 1; known[fs[j]] = 1 }
	}
	bad = 0
}
{
	file = $1; layer = $2; inc = $3
	from = folder_of_path(file)
	if (inc ~ /\.\./) { print file ": include \"" inc "\" uses .."; bad++; next }
	if (inc !~ /\//) { print file ": include \"" inc "\" does not name its folder"; bad++; next }
	to = folder_of_inc(inc)
	if (!(to in known)) { print file ": include \"" inc "\": unknown folder " to; bad++; next }
	if (!((layer SUBSEP to) in sees)) {
		print file ": include \"" inc "\": layer " layer " may not use " to; bad++
	}
	# a unit test of a folder (tests/unit/<folder>/) may look inside it
	own = file ~ ("^tests/unit/" to "/")
	if (inc ~ /_int\.h$/ && to != from && !own) {
		print file ": include \"" inc "\" is private to " to; bad++
	}
	if (to != from) edge[from " " to] = 1
	if (file ~ /\.h$/) fedge[file " " path_of_inc(inc)] = 1
	checked++
}
END {
	if (mode == "--graph") { for (e in edge) print e; exit 0 }
	printf "%d includes checked, %d bad\n", checked, bad
	exit bad > 0
}' 2>/dev/null
rc=$?
[ "$mode" = --graph ] && exit $rc
fail=0; [ $rc = 0 ] || fail=$((fail + 1))

# cycles: tsort reports a loop in the folder graph or the header graph
if ! "$0" --graph | grep -v ':' | tsort >/dev/null 2>"${TMPDIR:-/tmp}/tsort.$$"; then
	echo "cycle between folders:"; cat "${TMPDIR:-/tmp}/tsort.$$"; fail=$((fail + 1))
fi
if ! includes | awk '$1 ~ /\.h$/ { p = $3; if (p !~ /^(db|hsm|ui|tests|fixtures)\//) p = "station/" p; print $1, p }' | sort -u | tsort >/dev/null 2>"${TMPDIR:-/tmp}/tsort.$$"; then
	echo "cycle between headers:"; cat "${TMPDIR:-/tmp}/tsort.$$"; fail=$((fail + 1))
fi
rm -f "${TMPDIR:-/tmp}/tsort.$$"

# size: no folder inside station/ above 30% of the product's lines
total=$(cat station/*/*.[ch] db/*.[ch] hsm/*.[ch] ui/*.[ch] | wc -l)
for d in station/*/; do
	n=$(cat "$d"*.[ch] | wc -l)
	if [ $((n * 100)) -gt $((total * 30)) ]; then
		echo "$d holds $n of $total product lines (over 30%)"; fail=$((fail + 1))
	fi
done
echo "layers: $((3 + $(ls -d station/*/ | wc -l) - fail)) passed, $fail failed"
[ "$fail" = 0 ]
