# The whole station on a lot of emulated boards, for the shell benchmarks
# (bench_remote.sh, bench_factory.sh): `station run --headless` under its own
# fx-usbemu (one umockdev testbed per station process), and an operator who
# swaps a board the moment its bay shows a result.  The operator (bash)
# reads the unit results alone, through grep: bash reads a pipe a byte at a
# time, and every event through it cost more CPU than the station's own work.  Sourced after
# tests/lib.sh, in the benchmark's scratch directory.
#
# usb_lot_run NAME DB SID PROFILE LOT BAYS QUEUE [station run options...]
#   QUEUE: a file naming one board directory (absolute) a line, in the
#   order they are plugged; the first BAYS go into ports 1-1 .. 1-BAYS.
#   The station stops after as many units as QUEUE has lines.  Writes
#   NAME.jsonl (every event) and NAME.err; returns the station's status.
#   With USB_LOT_TIME=1, NAME.cpu: "STATION EMU", the CPU seconds (user +
#   system) of the station and of fx-usbemu (the emulated boards), each
#   measured by GNU time around it.
# usb_lot_span JSONL...  "T0 T1": the first line-started and the last
#   line-stopped (UTC ms) over the given event files
# usb_lot_pass DB        the count of PASSed units in DB

usb_lot_run() {
	local name=$1 db=$2 sid=$3 profile=$4 lot=$5 bays=$6 queue=$7 n i rc=0 boardargs=()
	local outer=() inner=()
	shift 7
	if [ -n "${USB_LOT_TIME:-}" ]; then
		outer=(/usr/bin/time -f '%U %S' -o "$name.time-all")
		inner=(/usr/bin/time -f '%U %S' -o "$name.time-station")
	fi
	n=$(wc -l < "$queue")
	for i in $(seq 1 "$bays"); do
		ln -sfn "$(sed -n "${i}p" "$queue")" "$name.bay-1-$i"
		boardargs+=(--board "1-$i=$PWD/$name.bay-1-$i")
	done
	rm -f "$name.ctl" "$name.jsonl"
	mkfifo "$name.ctl"
	timeout 300 "${outer[@]}" "$BUILD/fx-usbemu" --quiet --control "$name.ctl" "${boardargs[@]}" -- \
		"${inner[@]}" "$STATION" --db "$db" --station-id "$sid" --user op-olga run --profile "$profile" \
		--lot "$lot" --headless --bays "$bays" --max-units "$n" "$@" 2> "$name.err" |
		tee "$name.jsonl" | grep --line-buffered '"kind":"unit-result"' |
		_usb_lot_operator "$name" "$queue" "$bays" "$n"
	rc=${PIPESTATUS[0]}
	[ -z "${USB_LOT_TIME:-}" ] || [ "$rc" != 0 ] ||
		awk 'FILENAME ~ /station$/ { s = $1 + $2 } FILENAME ~ /all$/ { a = $1 + $2 }
			END { printf "%.2f %.2f\n", s, a - s }' "$name.time-station" "$name.time-all" > "$name.cpu"
	return "$rc"
}

_usb_lot_operator() {
	local name=$1 queue=$2 next=$(($3 + 1)) n=$4 line port
	exec 3<>"$name.ctl"
	while IFS= read -r line; do
		[ "$next" -le "$n" ] || continue
		port=$(printf '%s' "$line" | sed -n 's/.*"bay":"\([^"]*\)".*/\1/p')
		echo "unplug $port" >&3
		ln -sfn "$(sed -n "${next}p" "$queue")" "$name.bay-$port"
		echo "plug $port" >&3
		next=$((next + 1))
	done
	exec 3>&-
}

usb_lot_span() {
	awk '/"kind":"line-started"/ { match($0, /"t_ms":[0-9]+/); t = substr($0, RSTART + 7, RLENGTH - 7) + 0
			if (!t0 || t < t0) t0 = t }
		/"kind":"line-stopped"/ { match($0, /"t_ms":[0-9]+/); t = substr($0, RSTART + 7, RLENGTH - 7) + 0
			if (t > t1) t1 = t }
		END { printf "%.0f %.0f\n", t0, t1 }' "$@"
}

usb_lot_pass() { sqlite3 -batch -noheader "$1" "SELECT count(*) FROM units WHERE status = 'pass'"; }
