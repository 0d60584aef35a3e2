# shellcheck shell=bash
# NetBox and both Zabbix APIs over HTTPS, as production runs them behind a private CA: a CA the stack
# makes (openssl) signs a certificate for 127.0.0.1/localhost, and HAProxy (Debian's package)
# terminates TLS in front of each, telling NetBox so (X-Forwarded-Proto) so its links say https.
# The plain HTTP ports stay. The CA is state (made anew after `wipe`). Sourced by scripts/stack.

TLS_STATE="$STATE_DIR/tls"
TLS_CA="$TLS_STATE/ca.crt"
NETBOX_TLS_PORT=${NBZX_NETBOX_TLS_PORT:-8443}
ZABBIX_TLS_PORT=${NBZX_ZABBIX_TLS_PORT:-8444}
ZABBIX7_TLS_PORT=${NBZX_ZABBIX7_TLS_PORT:-8445}

tls_install() {
  command -v haproxy >/dev/null && command -v openssl >/dev/null && return 0
  apt_install haproxy openssl
}

# tls_ca: the stack's CA, once per state.
tls_ca() {
  [ -f "$TLS_CA" ] && return 0
  command -v openssl >/dev/null || apt_install openssl
  log "tls: making the stack's CA (openssl)"
  mkdir -p "$TLS_STATE"
  (
    cd "$TLS_STATE"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=nbzx local stack CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.crt
    chmod 600 ca.key
  ) >"$LOG_DIR/tls-openssl.log" 2>&1 || { tail -n 20 "$LOG_DIR/tls-openssl.log" >&2; die "openssl could not make the stack's CA"; }
}

# tls_cert NAME CN: NAME.crt, NAME.key and NAME.pem (both) signed by the stack's CA, for 127.0.0.1,
# localhost and the pods' gateway, usable by servers and as a client certificate. Once per state.
tls_cert() {
  local name=$1 cn=$2
  [ -f "$TLS_STATE/$name.pem" ] && return 0
  tls_ca
  (
    cd "$TLS_STATE"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$name.key" -out "$name.csr"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:$POD_GATEWAY" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
      -extfile "$name.ext" -out "$name.crt"
    cat "$name.crt" "$name.key" > "$name.pem"
    chmod 600 "$name.key" "$name.pem"
  ) >>"$LOG_DIR/tls-openssl.log" 2>&1 || { tail -n 20 "$LOG_DIR/tls-openssl.log" >&2; die "openssl could not sign $name"; }
}

tls_configure() {
  tls_cert server localhost
  cat > "$TLS_STATE/haproxy.cfg" <<CFG
global
  log stdout format raw local0 notice
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend netbox
  bind 127.0.0.1:$NETBOX_TLS_PORT ssl crt $TLS_STATE/server.pem
  http-request set-header X-Forwarded-Proto https
  default_backend netbox
backend netbox
  server netbox 127.0.0.1:$NETBOX_PORT
frontend zabbix
  bind 127.0.0.1:$ZABBIX_TLS_PORT ssl crt $TLS_STATE/server.pem
  default_backend zabbix
backend zabbix
  server zabbix 127.0.0.1:$ZABBIX_PORT
frontend zabbix7
  bind 127.0.0.1:$ZABBIX7_TLS_PORT ssl crt $TLS_STATE/server.pem
  default_backend zabbix7
backend zabbix7
  server zabbix7 127.0.0.1:$ZABBIX7_PORT
CFG
}

tls_ready() { curl -sf -m 5 --cacert "$TLS_CA" -o /dev/null "https://127.0.0.1:$ZABBIX_TLS_PORT/api_jsonrpc.php" -X POST \
  -H 'Content-Type: application/json-rpc' -d '{"jsonrpc":"2.0","method":"apiinfo.version","params":{},"id":1}'; }

tls_up() {
  local t0; t0=$(now)
  if pid_alive "$(state_pid tls-front)"; then
    log "tls: already running on :$NETBOX_TLS_PORT, :$ZABBIX_TLS_PORT, :$ZABBIX7_TLS_PORT"; return 0
  fi
  tls_install
  tls_configure
  port_open "$NETBOX_TLS_PORT" && die "port $NETBOX_TLS_PORT is taken by a process the stack did not start"
  log "tls: starting HAProxy (HTTPS to NetBox :$NETBOX_TLS_PORT, Zabbix 6.0 :$ZABBIX_TLS_PORT, 7.0 :$ZABBIX7_TLS_PORT)"
  start_bg tls-front "$NETBOX_TLS_PORT" "$LOG_DIR/haproxy.log" haproxy -W -db -f "$TLS_STATE/haproxy.cfg"
  wait_for "HTTPS front" 30 "$LOG_DIR/haproxy.log" tls_ready || die "the HTTPS front did not answer"
  log "tls: up in $(elapsed "$t0")s (CA $TLS_CA)"
}

tls_down() { stop_service tls-front; }

tls_status() {
  local pid; pid=$(state_pid tls-front)
  if pid_alive "$pid"; then echo "tls       up    :$NETBOX_TLS_PORT :$ZABBIX_TLS_PORT :$ZABBIX7_TLS_PORT pid $pid (CA $TLS_CA)"
  else echo "tls       down"; fi
}
