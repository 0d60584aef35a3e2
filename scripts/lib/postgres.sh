# PostgreSQL 15 from Debian's packages, shared by Zabbix and NetBox. Sourced by scripts/stack.
# shellcheck shell=bash

postgres_up() {
  local t0; t0=$(now)
  # libpq-dev: NetBox pins psycopg[c], which is built from source against it.
  # curl: the stack's health checks use it.
  apt_install postgresql-15 postgresql-client-15 libpq-dev gcc curl
  # Zabbix server and NetBox's gunicorn/rqworker together hold more than the default 100 connections.
  # jit = off: NetBox's config-context subquery is estimated at ~10^11, so PostgreSQL JIT-compiles
  # every device and VM read, about 1.2 s each here; without JIT the same read takes 0.15 s.
  mkdir -p /etc/postgresql/15/main/conf.d
  printf 'max_connections = 300\nlisten_addresses = '"'"'127.0.0.1'"'"'\njit = off\n' > /etc/postgresql/15/main/conf.d/nbzx.conf.new
  if ! cmp -s /etc/postgresql/15/main/conf.d/nbzx.conf.new /etc/postgresql/15/main/conf.d/nbzx.conf; then
    mv /etc/postgresql/15/main/conf.d/nbzx.conf.new /etc/postgresql/15/main/conf.d/nbzx.conf
    # A running cluster picks jit up on reload (max_connections waits for its next start).
    pg_ctlcluster 15 main reload 2>/dev/null || true
  fi
  rm -f /etc/postgresql/15/main/conf.d/nbzx.conf.new
  if pg_lsclusters -h | awk '$1==15 && $2=="main" && $4=="online"' | grep -q .; then
    log "postgres: already running on :$PG_PORT"
    return 0
  fi
  log "postgres: starting cluster 15/main"
  pg_ctlcluster 15 main start || { tail -n 30 /var/log/postgresql/postgresql-15-main.log >&2; die "postgres did not start"; }
  wait_for "postgres" 60 /var/log/postgresql/postgresql-15-main.log psql_admin -tAc 'select 1'
  state_set postgres "$(head -1 /var/lib/postgresql/15/main/postmaster.pid)" "$PG_PORT"
  log "postgres: up in $(elapsed "$t0")s"
}

postgres_down() {
  local pid; pid=$(state_pid postgres)
  if pid_alive "$pid"; then
    log "stopping postgres (pid $pid)"
    pg_ctlcluster 15 main stop -m fast || kill -INT "$pid"
  fi
  state_del postgres
}

postgres_status() {
  pg_lsclusters -h | awk '$1==15 && $2=="main" {print "postgres  " $4 "  :" $3}'
}
