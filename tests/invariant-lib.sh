# Helpers for the invariant tests (tests/e2e/invariant_*.sh; sourced after
# tests/lib.sh, in the test's scratch directory).  The bench is the line
# tests' (tests/line-lib.sh); this file only names it and adds byte search.
#
# inv_bench LOT COUNT [fx-mfgkit options...]
#   line_bench with profile "inv" (widget.profile) on token inv-ca, boards that
#   answer at once, and max_failures_in_row = 50 so no bay is held.  The PIN
#   source is hsm/pin unless INV_PIN_ENV names a variable (pin_env = VAR).
# inv_uid BOARD_DIR     the unique id of a board made by inv_bench
# inv_hex FILE          FILE's bytes as one line of lower-case hex
# inv_find HAYSTACK_HEX PATTERN_FILE
#   0 when any pattern (lower-case hex, one a line) occurs in the hex string
#   in file HAYSTACK_HEX

LINE_SID=inv-1
. "$TOP/tests/line-lib.sh"

inv_bench() {
	local lot=$1 count=$2
	shift 2
	LINE_TOKEN=inv-ca LINE_PROFILE_FILE=widget.profile LINE_PIN_ENV=${INV_PIN_ENV:-} \
		LINE_MAX_FAILURES=50 line_bench inv "$lot" "$count" "$@"
}

inv_uid() { line_board_uid "$1"; }

inv_hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }

inv_find() { grep -q -F -f "$2" "$1"; }
