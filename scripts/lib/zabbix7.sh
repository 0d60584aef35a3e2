# Zabbix 7.0 LTS next to the 6.0 one: Debian's own 7.0 packages (trixie-backports, the newest 7.0
# shellcheck shell=bash
# Debian builds) in a minimal trixie chroot cached under $CACHE_DIR, its database in the shared
# PostgreSQL (database "zabbix7"), and the frontend's JSON-RPC API served by the chroot's PHP
# built-in server on its own port. No zabbix_server: every API call the service makes works
# without one (only history.push needs it). Sourced by scripts/stack.

ZABBIX7_ROOT="$CACHE_DIR/zabbix7/root-trixie"
ZABBIX7_LOG="$LOG_DIR/zabbix7-php.log"
ZABBIX7_URL="http://127.0.0.1:$ZABBIX7_PORT/api_jsonrpc.php"
ZABBIX7_SUITE=trixie
ZABBIX7_BACKPORTS=trixie-backports

zabbix7_api_ready() { zabbix_api_ready "$ZABBIX7_URL"; }
zabbix7_login_ok() { zabbix_login_ok "$ZABBIX7_URL"; }

zabbix7_chroot() { chroot "$ZABBIX7_ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

zabbix7_install() {
  [ -f "$ZABBIX7_ROOT/.nbzx-ready" ] && return 0
  local t0 mirror partial="$ZABBIX7_ROOT.partial"; t0=$(now)
  mirror=$(debian_mirror); [ -n "$mirror" ] || die "zabbix7: no Debian mirror found in /etc/apt/sources.list.d/debian.sources"
  apt_install debootstrap curl
  # A chroot is never removed while its /proc is mounted (rm would walk into the host's /proc).
  umount "$partial/proc" 2>/dev/null || true
  rm -rf "$partial"; mkdir -p "$(dirname "$partial")"
  log "zabbix7: debootstrap $ZABBIX7_SUITE (minbase) into the cache (~30-60 s, once)"
  debootstrap --variant=minbase "$ZABBIX7_SUITE" "$partial" "$mirror" >"$LOG_DIR/zabbix7-debootstrap.log" 2>&1 \
    || { tail -n 20 "$LOG_DIR/zabbix7-debootstrap.log" >&2; die "debootstrap $ZABBIX7_SUITE failed"; }
  cp /etc/resolv.conf "$partial/etc/resolv.conf" 2>/dev/null || true
  # Nothing starts by itself inside; no recommends; PHP without Apache or FPM; Zabbix from backports.
  printf '#!/bin/sh\nexit 101\n' > "$partial/usr/sbin/policy-rc.d"; chmod 755 "$partial/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$partial/etc/apt/apt.conf.d/99nbzx"
  cat > "$partial/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $ZABBIX7_SUITE $ZABBIX7_BACKPORTS
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  rm -f "$partial/etc/apt/sources.list"
  # The backports Release file names itself "stable-backports": pin by codename (n=), not archive (a=).
  cat > "$partial/etc/apt/preferences.d/nbzx" <<'PIN'
Package: apache2* libapache2-mod-php* php*-fpm
Pin: release *
Pin-Priority: -1

Package: zabbix-*
Pin: release n=trixie-backports
Pin-Priority: 990
PIN
  mount -t proc proc "$partial/proc"
  log "zabbix7: installing zabbix-frontend-php and zabbix-server-pgsql 7.0 in the chroot (~60-100 s, once)"
  local rc=0
  ZABBIX7_ROOT=$partial zabbix7_chroot sh -c 'apt-get update -q && apt-get install -y -q zabbix-frontend-php zabbix-server-pgsql php-cli php-cgi php-pgsql' \
    >"$LOG_DIR/zabbix7-apt.log" 2>&1 || rc=$?
  umount "$partial/proc"
  [ "$rc" = 0 ] || { tail -n 20 "$LOG_DIR/zabbix7-apt.log" >&2; die "installing Zabbix 7.0 in the chroot failed"; }
  ZABBIX7_ROOT=$partial zabbix7_chroot apt-get clean
  touch "$partial/.nbzx-ready"
  mv "$partial" "$ZABBIX7_ROOT"
  log "zabbix7: chroot ready in $(elapsed "$t0")s ($(zabbix7_package_version))"
}

zabbix7_package_version() {
  zabbix7_chroot dpkg-query -W -f='zabbix-frontend-php ${Version}' zabbix-frontend-php 2>/dev/null || echo "version unknown"
}

zabbix7_configure() {
  # The chroot's own copy of the fixed path the Debian frontend reads.
  zabbix_frontend_conf zabbix7 nbzx-local-7 > "$ZABBIX7_ROOT/etc/zabbix/zabbix.conf.php"
  chmod 644 "$ZABBIX7_ROOT/etc/zabbix/zabbix.conf.php"
}

zabbix7_up() {
  local t0; t0=$(now)
  if pid_alive "$(state_pid zabbix7-php)" && zabbix7_api_ready; then
    log "zabbix7: already running on :$ZABBIX7_PORT"; return 0
  fi
  zabbix7_install
  zabbix_load_db zabbix7 "$ZABBIX7_ROOT/usr/share/zabbix-server-pgsql"
  zabbix7_configure
  if ! pid_alive "$(state_pid zabbix7-php)"; then
    port_open "$ZABBIX7_PORT" && die "port $ZABBIX7_PORT is taken by a process the stack did not start"
    log "zabbix7: starting the API (php -S in the chroot, 4 workers, memory_limit 128M) on :$ZABBIX7_PORT"
    start_bg zabbix7-php "$ZABBIX7_PORT" "$ZABBIX7_LOG" \
      chroot "$ZABBIX7_ROOT" env -i PATH=/usr/bin:/bin PHP_CLI_SERVER_WORKERS=4 \
      php -d memory_limit=128M -S "127.0.0.1:$ZABBIX7_PORT" -t /usr/share/zabbix
  fi
  wait_for "zabbix7 apiinfo.version" 60 "$ZABBIX7_LOG" zabbix7_api_ready || die "zabbix7 API did not answer"
  wait_for "zabbix7 Admin login" 30 "$ZABBIX7_LOG" zabbix7_login_ok || die "zabbix7 Admin could not log in"
  log "zabbix7: up in $(elapsed "$t0")s (API $ZABBIX7_URL, Admin/zabbix, $(zabbix7_package_version))"
}

# stop_service ends the whole process group: killing only the master would leave the workers listening.
zabbix7_down() { stop_service zabbix7-php; }

zabbix7_reset() {
  zabbix_reset_db zabbix7
  zabbix7_up
}

zabbix7_status() {
  local pid; pid=$(state_pid zabbix7-php)
  if pid_alive "$pid" && zabbix7_api_ready; then echo "zabbix7   up    :$ZABBIX7_PORT pid $pid ($ZABBIX7_URL)"
  else echo "zabbix7   down"; fi
}
