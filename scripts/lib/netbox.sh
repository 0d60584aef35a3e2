# NetBox 4.7.3 from its PyPI wheel, in its own Python 3.12 venv, with Redis, gunicorn and an RQ
# shellcheck shell=bash
# worker. Sourced by scripts/stack.

NETBOX_VERSION=4.7.3
NETBOX_HOME="$CACHE_DIR/netbox"
NETBOX_VENV="$NETBOX_HOME/venv-$NETBOX_VERSION"
# Generated configuration (state); the venv and the migrated dump are cached.
export NETBOX_ROOT="$STATE_DIR/netbox"
NETBOX_DUMP="$NETBOX_HOME/netbox-$NETBOX_VERSION-base.dump"
NETBOX_URL="http://127.0.0.1:$NETBOX_PORT"
# Deterministic v2 API token for the local stack and the tests (never used outside loopback).
NETBOX_TOKEN_KEY=nbzxlocal001
NETBOX_TOKEN_SECRET=NbzxLocalToken0123456789abcdefghijABCDEF
NETBOX_TOKEN="nbt_$NETBOX_TOKEN_KEY.$NETBOX_TOKEN_SECRET"

netbox_cmd() { NETBOX_ROOT="$NETBOX_ROOT" "$NETBOX_VENV/bin/netbox" "$@"; }

find_python312() {
  local c
  for c in "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12 \
           "$(command -v python3.12 2>/dev/null)"; do
    [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$c"; return 0; }
  done
  return 1
}

redis_up() {
  apt_install redis-server curl
  if pid_alive "$(state_pid redis)" && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then return 0; fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by a process the stack did not start"
  log "redis: starting on :$REDIS_PORT"
  start_bg redis "$REDIS_PORT" "$LOG_DIR/redis.log" \
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --daemonize no
  wait_for redis 30 "$LOG_DIR/redis.log" sh -c "redis-cli -h 127.0.0.1 -p $REDIS_PORT ping | grep -q PONG" || die "redis did not start"
}

netbox_install() {
  # Read pip's whole answer before matching: `pip show | grep -q` fails under pipefail whenever grep
  # exits first and pip dies of SIGPIPE, and that wiped and reinstalled a working NetBox.
  local installed=""
  [ -x "$NETBOX_VENV/bin/netbox" ] && installed=$("$NETBOX_VENV/bin/pip" show netbox 2>/dev/null | sed -n 's/^Version: //p')
  if [ "$installed" = "$NETBOX_VERSION" ]; then
    return 0
  fi
  local py t0; t0=$(now)
  py=$(find_python312) || die "NetBox $NETBOX_VERSION needs Python 3.12, and none was found (looked under pyenv, /usr/local/bin, /usr/bin, PATH). Install one, e.g. 'pyenv install 3.12'."
  log "netbox: creating venv with $py and installing netbox==$NETBOX_VERSION (~1-2 min; builds psycopg-c)"
  rm -rf "$NETBOX_VENV"
  "$py" -m venv "$NETBOX_VENV"
  "$NETBOX_VENV/bin/pip" install -q --disable-pip-version-check "netbox==$NETBOX_VERSION" >"$LOG_DIR/netbox-pip.log" 2>&1 \
    || { tail -n 30 "$LOG_DIR/netbox-pip.log" >&2; die "pip install netbox failed"; }
  log "netbox: installed in $(elapsed "$t0")s"
}

netbox_configure() {
  mkdir -p "$NETBOX_ROOT"
  [ -d "$NETBOX_ROOT/conf" ] || netbox_cmd setup --target "$NETBOX_ROOT" >/dev/null
  cat > "$NETBOX_ROOT/conf/configuration.py" <<'PY'
# Local test instance of NetBox for netbox-zabbix-stream (written by scripts/stack; loopback only).
# 10.244.0.1: the local Kubernetes' pods reach NetBox there (scripts/cluster relays it).
ALLOWED_HOSTS = ['127.0.0.1', 'localhost', '10.244.0.1']
DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'netbox', 'USER': 'netbox',
                         'PASSWORD': 'netbox-pass', 'HOST': '127.0.0.1', 'PORT': '5432', 'CONN_MAX_AGE': 300}}
REDIS = {
    'tasks': {'HOST': '127.0.0.1', 'PORT': 6379, 'USERNAME': '', 'PASSWORD': '', 'DATABASE': 0, 'SSL': False},
    'caching': {'HOST': '127.0.0.1', 'PORT': 6379, 'USERNAME': '', 'PASSWORD': '', 'DATABASE': 1, 'SSL': False},
}
SECRET_KEY = 'nbzx-local-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEF'
API_TOKEN_PEPPERS = {1: 'nbzx-local-only-pepper-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH'}
DEBUG = False
TIME_ZONE = 'UTC'
RELEASE_CHECK_URL = None
CENSUS_REPORTING_ENABLED = False
ISOLATED_DEPLOYMENT = True
# Webhooks on their own queue, so they are not stuck behind the per-change search-cache jobs.
QUEUE_MAPPINGS = {'webhook': 'high'}
# Behind the stack's HTTPS front (scripts/lib/tls.sh), which says so: links in answers read https.
# NetBox listens on loopback only, so only that front can send the header.
SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')
# Failed deliveries (receiver down, 503) are retried; the default of 0 loses them.
RQ_RETRY_MAX = 5
RQ_RETRY_INTERVAL = [2, 5, 10, 30, 60]
PY
  cat > "$NETBOX_ROOT/gunicorn.py" <<PY
bind = '127.0.0.1:$NETBOX_PORT'
workers = 3
threads = 3
timeout = 120
max_requests = 5000
max_requests_jitter = 500
control_socket_disable = True
PY
}

netbox_db() {
  db_ready netbox && return 0
  db_drop netbox
  psql_admin <<'SQL'
SELECT 'CREATE ROLE netbox LOGIN PASSWORD ''netbox-pass''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname='netbox') \gexec
CREATE DATABASE netbox OWNER netbox;
SQL
  local t0; t0=$(now)
  if [ -f "$NETBOX_DUMP" ]; then
    log "netbox: restoring the migrated database from $NETBOX_DUMP"
    PGPASSWORD=netbox-pass pg_restore -h 127.0.0.1 -U netbox -d netbox --no-owner "$NETBOX_DUMP" \
      || die "pg_restore of $NETBOX_DUMP failed (delete it to migrate from scratch)"
    db_made netbox
    log "netbox: database restored in $(elapsed "$t0")s"
    return 0
  fi
  log "netbox: running migrations (about 5-6 minutes on 2 cores; cached afterwards)"
  netbox_cmd migrate --no-input >"$LOG_DIR/netbox-migrate.log" 2>&1 &
  local mpid=$! n=0
  while pid_alive "$mpid"; do
    sleep 15; n=$((n + 15))
    log "  ... migrate ${n}s, $(grep -c '  Applying' "$LOG_DIR/netbox-migrate.log") migrations applied"
  done
  wait "$mpid" || { tail -n 30 "$LOG_DIR/netbox-migrate.log" >&2; psql_admin -c 'DROP DATABASE netbox WITH (FORCE)'; die "netbox migrate failed"; }
  log "netbox: creating the admin user and the API token"
  DJANGO_SUPERUSER_PASSWORD='AdminPass12345' netbox_cmd createsuperuser --no-input --username admin \
    --email admin@example.com >"$LOG_DIR/netbox-superuser.log" 2>&1 || die "createsuperuser failed"
  netbox_cmd nbshell -c "
from users.models import Token, User
u = User.objects.get(username='admin')
t = Token(user=u, version=2, key='$NETBOX_TOKEN_KEY', token='$NETBOX_TOKEN_SECRET', description='nbzx local stack')
t.full_clean(); t.save()
" >"$LOG_DIR/netbox-token.log" 2>&1 || { cat "$LOG_DIR/netbox-token.log" >&2; die "token creation failed"; }
  PGPASSWORD=netbox-pass pg_dump -h 127.0.0.1 -U netbox -Fc -f "$NETBOX_DUMP.tmp" netbox && mv "$NETBOX_DUMP.tmp" "$NETBOX_DUMP"
  db_made netbox
  log "netbox: database migrated and cached in $(elapsed "$t0")s"
}

netbox_api_ready() {
  curl -sf -m 5 -o /dev/null -H "Authorization: Bearer $NETBOX_TOKEN" "$NETBOX_URL/api/status/"
}

netbox_processes_up() {
  if ! pid_alive "$(state_pid netbox-web)"; then
    port_open "$NETBOX_PORT" && die "port $NETBOX_PORT is taken by a process the stack did not start"
    log "netbox: starting gunicorn on :$NETBOX_PORT"
    start_bg netbox-web "$NETBOX_PORT" "$LOG_DIR/netbox-gunicorn.log" \
      env NETBOX_ROOT="$NETBOX_ROOT" "$NETBOX_VENV/bin/gunicorn" --config "$NETBOX_ROOT/gunicorn.py" netbox.wsgi
  fi
  if ! pid_alive "$(state_pid netbox-rq)"; then
    log "netbox: starting rqworker (SimpleWorker; queues high, default, low)"
    start_bg netbox-rq - "$LOG_DIR/netbox-rqworker.log" \
      env NETBOX_ROOT="$NETBOX_ROOT" "$NETBOX_VENV/bin/netbox" rqworker \
        --worker-class rq.worker.SimpleWorker high default low
  fi
  wait_for "netbox API" 180 "$LOG_DIR/netbox-gunicorn.log" netbox_api_ready || die "netbox API did not answer"
  wait_for "netbox rqworker" 120 "$LOG_DIR/netbox-rqworker.log" grep -q 'Listening on' "$LOG_DIR/netbox-rqworker.log" \
    || die "netbox rqworker did not start"
}

netbox_up() {
  local t0; t0=$(now)
  redis_up
  if pid_alive "$(state_pid netbox-web)" && pid_alive "$(state_pid netbox-rq)" && netbox_api_ready; then
    log "netbox: already running on :$NETBOX_PORT"; return 0
  fi
  netbox_install
  netbox_configure
  netbox_db
  netbox_processes_up
  log "netbox: up in $(elapsed "$t0")s ($NETBOX_URL, admin/AdminPass12345, token $NETBOX_TOKEN)"
}

netbox_down() { stop_service netbox-rq netbox-web redis; }

# Back to the freshly migrated database: gunicorn holds connections, so stop it first.
netbox_reset() {
  [ -f "$NETBOX_DUMP" ] || die "no cached NetBox dump yet; run 'scripts/stack up' first"
  stop_service netbox-rq; stop_service netbox-web
  log "netbox: restoring the database from $NETBOX_DUMP"
  db_drop netbox
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" flushall >/dev/null 2>&1 || true
  netbox_up
}

netbox_status() {
  local pid; pid=$(state_pid netbox-web)
  if pid_alive "$pid" && netbox_api_ready; then echo "netbox    up    :$NETBOX_PORT pid $pid ($NETBOX_URL)"
  else echo "netbox    down"; fi
  pid=$(state_pid netbox-rq); if pid_alive "$pid"; then echo "nb-rq     up    pid $pid"; else echo "nb-rq     down"; fi
  pid=$(state_pid redis); if pid_alive "$pid"; then echo "redis     up    :$REDIS_PORT pid $pid"; else echo "redis     down"; fi
}
