# Shared helpers for scripts/stack, scripts/cluster and scripts/image: logging, the state file,
# background start, health waits, apt. Sourced, not run.
# shellcheck shell=bash
# The settings below are read by the files that source this one; checked alone they look unused.
# shellcheck disable=SC2034
# shellcheck source=scripts/lib/fail.sh
. "$(dirname "${BASH_SOURCE[0]}")/fail.sh"

# Two places, both outside the repository:
# - CACHE_DIR holds what is downloaded or built once (Kafka's jars, NetBox's venv and its migrated
#   dump, the Zabbix 7.0 chroot, Kubernetes' binaries, tools): kept between runs and clones.
# - STATE_DIR holds what running the stack makes (Kafka's data, generated configs, pid/state file,
#   logs, the cluster's etcd and containerd): `scripts/stack wipe` empties it, and the whole test
#   command starts from an empty one, so every run replays a fresh machine's order of steps.
CACHE_DIR=${NBZX_CACHE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/nbzx-stack}
STATE_DIR=${NBZX_STATE_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/nbzx-stack}
STATE_FILE="$STATE_DIR/stack.state"
LOG_DIR="$STATE_DIR/logs"
mkdir -p "$CACHE_DIR" "$STATE_DIR" "$LOG_DIR"

# Fixed loopback ports; the test fixtures and the example config use the same numbers.
PG_PORT=5432
REDIS_PORT=6379
KAFKA_PORT=${NBZX_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${NBZX_KAFKA_CONTROLLER_PORT:-9093}
ZABBIX_PORT=${NBZX_ZABBIX_PORT:-8081}
ZABBIX7_PORT=${NBZX_ZABBIX7_PORT:-8082}
NETBOX_PORT=${NBZX_NETBOX_PORT:-8000}
# The local Kubernetes' pod network (scripts/cluster): pods reach the stack at the bridge's host address.
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
KAFKA_PODS_PORT=${NBZX_KAFKA_PODS_PORT:-19092}

# log MESSAGE: a progress line; it also names the step a failure report shows (scripts/lib/fail.sh).
log() { NBZX_STEP=$*; printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }

# state_set NAME PID PORT: one line per service we started; `down` stops exactly these PIDs. The
# process's start time goes with its PID: after a machine restart the kernel hands the same numbers
# to other processes, and those are not ours to stop.
state_set() {
  local name=$1 pid=$2 port=$3
  touch "$STATE_FILE"
  grep -v "^$name " "$STATE_FILE" > "$STATE_FILE.tmp" || true
  printf '%s %s %s %s\n' "$name" "$pid" "$port" "$(proc_start "$pid")" >> "$STATE_FILE.tmp"
  mv "$STATE_FILE.tmp" "$STATE_FILE"
}
state_del() {
  [ -f "$STATE_FILE" ] || return 0
  grep -v "^$1 " "$STATE_FILE" > "$STATE_FILE.tmp" || true
  mv "$STATE_FILE.tmp" "$STATE_FILE"
}
# state_pid NAME: the PID recorded for NAME while it is still the process recorded (same start
# time); nothing otherwise. A line without a start time (written by an older script) is trusted.
state_pid() {
  [ -f "$STATE_FILE" ] || return 0
  local pid started
  read -r pid started < <(awk -v n="$1" '$1==n {print $2, $4}' "$STATE_FILE") || true
  [ -n "$pid" ] || return 0
  if [ -z "$started" ] || [ "$started" = "$(proc_start "$pid")" ]; then echo "$pid"; fi
}
# proc_start PID: when the process started, in clock ticks since boot (field 22 of /proc/PID/stat;
# the fields are counted after the command name, which may hold spaces).
proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $stat
  echo "${20}"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# start_bg NAME PORT LOGFILE CMD...: start CMD in its own session (so `down` can end its whole
# process group) and record it.
start_bg() {
  local name=$1 port=$2 logfile=$3; shift 3
  setsid nohup "$@" >"$logfile" 2>&1 </dev/null &
  state_set "$name" "$!" "$port"
}

# stop_service NAME...: TERM the process groups we started, all at once (a broker waits for its
# quorum if its peers are already gone; everything else simply stops sooner), then KILL what is
# left after 20 s.
stop_service() {
  local name pid entry stopping=() left
  for name in "$@"; do
    pid=$(state_pid "$name")
    if pid_alive "$pid"; then
      log "stopping $name (pid $pid)"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$name:$pid")
    fi
  done
  for _ in $(seq 1 200); do
    left=()
    for entry in "${stopping[@]}"; do pid_alive "${entry#*:}" && left+=("$entry"); done
    [ "${#left[@]}" -eq 0 ] && break
    sleep 0.1
  done
  for entry in "${left[@]}"; do
    log "${entry%%:*} did not stop in 20 s; killing it"
    kill -KILL -- "-${entry#*:}" 2>/dev/null || kill -KILL "${entry#*:}" 2>/dev/null || true
  done
  for name in "$@"; do state_del "$name"; done
}

# wait_for DESC TIMEOUT_S LOGFILE CMD...: poll CMD until it succeeds; progress every 10 s; on
# timeout print the tail of LOGFILE and fail.
wait_for() {
  local desc=$1 timeout=$2 logfile=$3; shift 3
  local t0 last=0 waited
  t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    waited=$(( $(date +%s) - t0 ))
    if [ "$waited" -ge "$timeout" ]; then
      log "$desc: not ready after ${timeout}s; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 2>/dev/null || true
      return 1
    fi
    if [ $((waited / 10)) -gt "$last" ]; then
      last=$((waited / 10)); log "  ... waiting for $desc (${waited}s)"
    fi
    sleep 0.3
  done
}

# apt_install PKG...: install only what is missing. --no-upgrade so a running PostgreSQL is never
# upgraded under its own feet (a new plpgsql.so against an old postmaster breaks every new backend).
APT_UPDATED=0
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -q >"$LOG_DIR/apt-update.log" 2>&1 || { tail "$LOG_DIR/apt-update.log" >&2; die "apt-get update failed"; }
    APT_UPDATED=1
  fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends --no-upgrade "${missing[@]}" \
    >"$LOG_DIR/apt-install.log" 2>&1 || { tail -n 30 "$LOG_DIR/apt-install.log" >&2; die "apt-get install ${missing[*]} failed"; }
}

# The Debian mirror this machine already uses (read at run time, never written down).
debian_mirror() {
  awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
    || awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

psql_admin() { (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"); }
db_exists() { psql_admin -tAc "select 1 from pg_database where datname='$1'" | grep -q 1; }
# The stack's databases are state, yet they live in PostgreSQL (a machine service) where `wipe` can
# drop them only while it runs: after a machine restart it does not, and a database left from before
# (recovered from a crash, say) must not pass for a fresh one. So one counts only while STATE_DIR
# marks it: db_ready NAME (it exists and is marked), db_made NAME (mark it), db_drop NAME (both go).
db_ready() { [ -f "$STATE_DIR/databases/$1" ] && db_exists "$1"; }
db_made() { mkdir -p "$STATE_DIR/databases" && touch "$STATE_DIR/databases/$1"; }
db_drop() { rm -f "$STATE_DIR/databases/$1"; psql_admin -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; }
