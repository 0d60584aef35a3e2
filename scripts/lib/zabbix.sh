# Zabbix 6.0 LTS from Debian's packages: DB on the shared PostgreSQL, the frontend's JSON-RPC API
# shellcheck shell=bash
# served by PHP's built-in server (no Apache), and zabbix_server. Sourced by scripts/stack.

ZABBIX_LOG="$LOG_DIR/zabbix-php.log"
ZABBIX_SERVER_LOG="$LOG_DIR/zabbix-server.log"  # console output of `zabbix_server -f`
ZABBIX_URL="http://127.0.0.1:$ZABBIX_PORT/api_jsonrpc.php"

# zabbix_api JSON [URL]: one JSON-RPC call (default: the 6.0 API). Also used by zabbix7.sh.
zabbix_api() {
  curl -s -m 5 -H 'Content-Type: application/json-rpc' -d "$1" "${2:-$ZABBIX_URL}"
}
zabbix_api_ready() { zabbix_api '{"jsonrpc":"2.0","method":"apiinfo.version","params":{},"id":1}' "${1:-}" | grep -q '"result"'; }
zabbix_login_ok() {
  zabbix_api '{"jsonrpc":"2.0","method":"user.login","params":{"username":"Admin","password":"zabbix"},"id":1}' "${1:-}" \
    | grep -q '"result"'
}

zabbix_install() {
  # php8.2-cgi is named on purpose: php8.2 needs one SAPI, and without it apt picks mod-php + apache2.
  apt_install zabbix-server-pgsql zabbix-frontend-php php8.2-cli php8.2-cgi php8.2-pgsql php8.2-bcmath \
    php8.2-mbstring php8.2-gd php8.2-xml php8.2-ldap curl
}

# zabbix_load_db DB SQL_DIR: database DB (and DB_pristine, its analysed copy for fast resets) from the
# schema, images and data files of a zabbix-server-pgsql package. Also used by zabbix7.sh.
zabbix_load_db() {
  local db=$1 sql=$2 t0 f; t0=$(now)
  db_ready "${db}_pristine" && db_ready "$db" && return 0
  db_drop "$db"; db_drop "${db}_pristine"
  log "zabbix: creating database $db and loading its schema (~20 s)"
  psql_admin <<SQL
SELECT 'CREATE ROLE zabbix LOGIN PASSWORD ''zabbix''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname='zabbix') \gexec
CREATE DATABASE $db OWNER zabbix ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0;
SQL
  for f in schema images data; do  # order matters; double/history_pk_prepare are upgrade-only
    log "  loading $f.sql"
    zcat "$sql/$f.sql.gz" | PGPASSWORD=zabbix psql -X -h 127.0.0.1 -U zabbix -d "$db" -q -v ON_ERROR_STOP=1 -o /dev/null
  done
  # ANALYZE before copying: an un-analysed copy ran host.create at ~0.5/s instead of ~10/s.
  psql_admin -d "$db" -c ANALYZE
  psql_admin -c "CREATE DATABASE ${db}_pristine TEMPLATE $db OWNER zabbix"
  db_made "$db"; db_made "${db}_pristine"
  log "zabbix: database $db ready in $(elapsed "$t0")s"
}

# zabbix_reset_db DB: back to DB_pristine in about a second (sessions and tokens go with it).
zabbix_reset_db() {
  log "zabbix: resetting the database $1 from ${1}_pristine"
  psql_admin -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1 TEMPLATE ${1}_pristine OWNER zabbix"
  db_made "$1"
}

# zabbix_frontend_conf DB NAME: the frontend's zabbix.conf.php for database DB on the shared PostgreSQL.
zabbix_frontend_conf() {
  cat <<PHP
<?php
\$DB['TYPE'] = 'POSTGRESQL';
\$DB['SERVER'] = '127.0.0.1';
\$DB['PORT'] = '5432';
\$DB['DATABASE'] = '$1';
\$DB['USER'] = 'zabbix';
\$DB['PASSWORD'] = 'zabbix';
\$DB['SCHEMA'] = '';
\$DB['ENCRYPTION'] = false;
\$DB['KEY_FILE'] = '';
\$DB['CERT_FILE'] = '';
\$DB['CA_FILE'] = '';
\$DB['VERIFY_HOST'] = false;
\$DB['CIPHER_LIST'] = '';
\$DB['VAULT_URL'] = '';
\$DB['VAULT_DB_PATH'] = '';
\$DB['VAULT_TOKEN'] = '';
\$DB['VAULT_CERT_FILE'] = '';
\$DB['VAULT_KEY_FILE'] = '';
\$DB['DOUBLE_IEEE754'] = true;
\$ZBX_SERVER = '127.0.0.1';
\$ZBX_SERVER_PORT = '10051';
\$ZBX_SERVER_NAME = '$2';
\$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
PHP
}

zabbix_configure() {
  # The Debian frontend reads exactly this path (hard-coded in CConfigFile).
  zabbix_frontend_conf zabbix nbzx-local > /etc/zabbix/zabbix.conf.php
  chmod 644 /etc/zabbix/zabbix.conf.php
  mkdir -p /etc/zabbix/zabbix_server.conf.d /run/zabbix
  chown zabbix:zabbix /run/zabbix
  # A small server: the stack needs the API, not a monitoring farm; fewer processes, fewer DB connections.
  cat > /etc/zabbix/zabbix_server.conf.d/nbzx-local.conf <<CONF
DBHost=127.0.0.1
DBPassword=zabbix
# The server drops root for user zabbix; console logging lands in the file the stack opened for it.
LogType=console
PidFile=/run/zabbix/zabbix_server.pid
StartPollers=2
StartPollersUnreachable=1
StartTrappers=2
StartPingers=1
StartDiscoverers=1
StartHTTPPollers=1
StartPreprocessors=2
StartAlerters=1
StartDBSyncers=2
CONF
}

zabbix_server_up() {
  pid_alive "$(state_pid zabbix-server)" && return 0
  log "zabbix: starting zabbix_server"
  start_bg zabbix-server 10051 "$ZABBIX_SERVER_LOG" zabbix_server -f -c /etc/zabbix/zabbix_server.conf
  wait_for "zabbix_server" 60 "$ZABBIX_SERVER_LOG" grep -q 'server #0 started' "$ZABBIX_SERVER_LOG" \
    || die "zabbix_server did not start"
}

zabbix_up() {
  local t0; t0=$(now)
  if pid_alive "$(state_pid zabbix-php)" && zabbix_api_ready "$ZABBIX_URL" && pid_alive "$(state_pid zabbix-server)"; then
    log "zabbix: already running on :$ZABBIX_PORT"; return 0
  fi
  zabbix_install
  zabbix_load_db zabbix /usr/share/zabbix-server-pgsql
  zabbix_configure
  if ! pid_alive "$(state_pid zabbix-php)"; then
    port_open "$ZABBIX_PORT" && die "port $ZABBIX_PORT is taken by a process the stack did not start"
    log "zabbix: starting the API (php -S, 4 workers, memory_limit 128M) on :$ZABBIX_PORT"
    # Without PHP_CLI_SERVER_WORKERS the built-in server answers one request at a time. php-cli has no
    # memory limit; the frontend's packages set 128M (what a stock Zabbix answers with), and so do we.
    PHP_CLI_SERVER_WORKERS=4 start_bg zabbix-php "$ZABBIX_PORT" "$ZABBIX_LOG" \
      php -d memory_limit=128M -S "127.0.0.1:$ZABBIX_PORT" -t /usr/share/zabbix
  fi
  wait_for "zabbix apiinfo.version" 60 "$ZABBIX_LOG" zabbix_api_ready "$ZABBIX_URL" || die "zabbix API did not answer"
  wait_for "zabbix Admin login" 30 "$ZABBIX_LOG" zabbix_login_ok || die "zabbix Admin could not log in"
  zabbix_server_up
  log "zabbix: up in $(elapsed "$t0")s (API $ZABBIX_URL, Admin/zabbix)"
}

zabbix_down() { stop_service zabbix-server zabbix-php; }

# Back to the pristine database in about a second. zabbix_server exits when its DB is dropped.
zabbix_reset() {
  stop_service zabbix-server
  zabbix_reset_db zabbix
  zabbix_up
}

zabbix_status() {
  local pid; pid=$(state_pid zabbix-php)
  if pid_alive "$pid" && zabbix_api_ready "$ZABBIX_URL"; then echo "zabbix    up    :$ZABBIX_PORT pid $pid ($ZABBIX_URL)"
  else echo "zabbix    down"; fi
  pid=$(state_pid zabbix-server)
  if pid_alive "$pid"; then echo "zbx-srv   up    :10051 pid $pid"; else echo "zbx-srv   down"; fi
}
