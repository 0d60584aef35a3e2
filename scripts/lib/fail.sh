# Sourced first by every script under scripts/: no failing command ends a script without saying so.
# On any failure that set -e would act on, it prints the step under way, the command, the file and
# line, and the tail of the log written last, then exits with the command's status.
# shellcheck shell=bash
set -Eeuo pipefail

NBZX_STEP=${NBZX_STEP:-starting}
# Logs written after this moment belong to this run; the newest of them is the one shown on failure.
NBZX_FAIL_T0=$(date +%s)

nbzx_on_err() {
  local rc=$1 cmd=$2 src=$3 line=$4 newest="" f
  # Inside a command substitution or subshell: leave the report to the shell that runs the script.
  [ "$BASHPID" = "$$" ] || exit "$rc"
  trap - ERR
  {
    printf '\n[%s] FAILED (exit status %s)\n' "${0##*/}" "$rc"
    printf '  step:    %s\n' "$NBZX_STEP"
    printf '  command: %s\n' "$cmd"
    printf '  where:   %s:%s\n' "$src" "$line"
    if [ -n "${LOG_DIR:-}" ] && [ -d "${LOG_DIR:-}" ]; then
      for f in "$LOG_DIR"/*.log; do
        if [ ! -f "$f" ] || [ "$(stat -c %Y "$f")" -lt "$NBZX_FAIL_T0" ]; then continue; fi
        if [ -z "$newest" ] || [ "$f" -nt "$newest" ]; then newest=$f; fi
      done
    fi
    if [ -n "$newest" ]; then
      printf '  log:     %s (last 20 lines)\n' "$newest"
      tail -n 20 "$newest" | sed 's/^/    | /'
    fi
  } >&2
  exit "$rc"
}
trap 'nbzx_on_err $? "$BASH_COMMAND" "${BASH_SOURCE[0]}" "$LINENO"' ERR
