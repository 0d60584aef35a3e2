# shellcheck shell=bash
# A secure Kafka cluster next to the plain broker, as production runs one (scripts/stack up kafka3;
# not started by a bare `up`): three KRaft nodes (broker and controller each), replication factor 3,
# min.insync.replicas 2, clients on SASL_SSL with SCRAM-SHA-512 and TLS from the stack's CA, the
# controllers on mutual TLS, ACLs enforced (StandardAuthorizer; nothing is allowed without one). The
# SCRAM users exist from the start (formatted in); the ACLs each component gets are the service's own
# (`nbzx kafka acls`), applied by the tests. A loopback PLAINTEXT listener per node answers readiness
# checks and nothing else (no ACL names its anonymous user). Sourced by scripts/stack.

KAFKA3_STATE="$STATE_DIR/kafka3"
KAFKA3_BASE_PORT=${NBZX_KAFKA3_BASE_PORT:-9291}  # node i: clients base+i-1, controller +100, health +200
KAFKA3_PODS_BASE_PORT=${NBZX_KAFKA3_PODS_BASE_PORT:-19291}  # node i's SASL_SSL listener for the local Kubernetes' pods
KAFKA3_USERS=(admin nbzx-receiver nbzx-consumer nbzx-console nbzx-hook)
KAFKA3_STOREPASS=nbzx-local  # the local stack's keystore password (loopback only)

kafka3_port() { echo $((KAFKA3_BASE_PORT + $1 - 1 + ${2:-0})); }
# The local stack's SCRAM passwords: "<user>-local-secret" (loopback only, like NetBox's token).
kafka3_password() { echo "$1-local-secret"; }
kafka3_bootstrap() { echo "127.0.0.1:$(kafka3_port 1),127.0.0.1:$(kafka3_port 2),127.0.0.1:$(kafka3_port 3)"; }
kafka3_pods_port() { echo $((KAFKA3_PODS_BASE_PORT + $1 - 1)); }
kafka3_pods_bootstrap() {
  echo "$POD_GATEWAY:$(kafka3_pods_port 1),$POD_GATEWAY:$(kafka3_pods_port 2),$POD_GATEWAY:$(kafka3_pods_port 3)"
}

# The plain broker's jars and Java, and openssl for the certificates.
kafka3_install() {
  kafka_install
  command -v openssl >/dev/null || apt_install openssl
}

kafka3_configure() {
  local i dir voters
  KAFKA3_CONFIG_CHANGED=0
  tls_cert kafka3 nbzx-broker
  if [ ! -f "$TLS_STATE/kafka3.p12" ]; then
    openssl pkcs12 -export -in "$TLS_STATE/kafka3.crt" -inkey "$TLS_STATE/kafka3.key" -name broker \
      -passout "pass:$KAFKA3_STOREPASS" -out "$TLS_STATE/kafka3.p12" >>"$LOG_DIR/tls-openssl.log" 2>&1 \
      || die "openssl could not make the brokers' keystore"
  fi
  voters="1@127.0.0.1:$(kafka3_port 1 100),2@127.0.0.1:$(kafka3_port 2 100),3@127.0.0.1:$(kafka3_port 3 100)"
  for i in 1 2 3; do
    dir="$KAFKA3_STATE/node$i"; mkdir -p "$dir"
    cat > "$dir/server.properties.new" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
# PODS: for the local Kubernetes' pods, on every address (the pod bridge may not exist yet), advertised
# on the bridge's host address like the plain broker's.
listeners=CLIENT://127.0.0.1:$(kafka3_port "$i"),CONTROLLER://127.0.0.1:$(kafka3_port "$i" 100),HEALTH://127.0.0.1:$(kafka3_port "$i" 200),PODS://0.0.0.0:$(kafka3_pods_port "$i")
advertised.listeners=CLIENT://127.0.0.1:$(kafka3_port "$i"),HEALTH://127.0.0.1:$(kafka3_port "$i" 200),PODS://$POD_GATEWAY:$(kafka3_pods_port "$i")
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SSL,HEALTH:PLAINTEXT,PODS:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(kafka3_password admin)";
# Every SASL listener needs a login entry; only the inter-broker one (CLIENT) logs in as someone.
listener.name.pods.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_STATE/kafka3.p12
ssl.keystore.password=$KAFKA3_STOREPASS
ssl.key.password=$KAFKA3_STOREPASS
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_CA
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:CN=nbzx-broker
allow.everyone.if.no.acl.found=false
log.dirs=$dir/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
num.network.threads=1
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.segment.bytes=16777216
PROPS
    cmp -s "$dir/server.properties.new" "$dir/server.properties" || KAFKA3_CONFIG_CHANGED=1
    mv "$dir/server.properties.new" "$dir/server.properties"
    kafka_log4j "$dir/log4j2.properties"
  done
  if [ ! -f "$KAFKA3_STATE/node1/data/meta.properties" ]; then
    log "kafka3: formatting three KRaft nodes with the SCRAM users ${KAFKA3_USERS[*]}"
    local cid scram=() u
    for u in "${KAFKA3_USERS[@]}"; do scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(kafka3_password "$u")]"); done
    cid=$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>"$LOG_DIR/kafka3-format.log" | tail -1)
    for i in 1 2 3; do
      java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cid" -c "$KAFKA3_STATE/node$i/server.properties" \
        "${scram[@]}" >>"$LOG_DIR/kafka3-format.log" 2>&1 \
        || { tail -n 20 "$LOG_DIR/kafka3-format.log" >&2; die "kafka3: storage format of node $i failed"; }
    done
  fi
}

kafka3_node_ready() { python3 "$SCRIPTS_DIR/lib/kafka_ready.py" "127.0.0.1:$(kafka3_port "$1" 200)" --brokers 3; }
kafka3_ready() { kafka3_node_ready 1 && kafka3_node_ready 2 && kafka3_node_ready 3; }

# kafka3_start_node I: one node in the background (the chaos tests stop and start them one by one).
kafka3_start_node() {
  local i=$1
  start_bg "kafka3-$i" "$(kafka3_port "$i")" "$LOG_DIR/kafka3-$i.log" \
    java -Xms192m -Xmx384m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA3_STATE/node$i/log4j2.properties" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA3_STATE/node$i/server.properties"
}

kafka3_up() {
  local t0 i; t0=$(now)
  kafka3_install
  kafka3_configure
  if pid_alive "$(state_pid kafka3-1)" && pid_alive "$(state_pid kafka3-2)" && pid_alive "$(state_pid kafka3-3)" \
    && kafka3_ready >/dev/null 2>&1; then
    if [ "$KAFKA3_CONFIG_CHANGED" = 0 ]; then log "kafka3: already running ($(kafka3_bootstrap))"; return 0; fi
    log "kafka3: its settings changed; restarting it"
    kafka3_down
  fi
  for i in 1 2 3; do
    if ! pid_alive "$(state_pid "kafka3-$i")"; then
      port_open "$(kafka3_port "$i")" && die "port $(kafka3_port "$i") is taken by a process the stack did not start"
      kafka3_start_node "$i"
    fi
  done
  log "kafka3: starting three nodes (SASL_SSL on $(kafka3_bootstrap))"
  wait_for "kafka3: three brokers" 180 "$LOG_DIR/kafka3-1.log" kafka3_ready || die "kafka3 did not become ready"
  log "kafka3: up in $(elapsed "$t0")s"
}

kafka3_down() { stop_service kafka3-1 kafka3-2 kafka3-3; }

kafka3_reset() { kafka3_down; rm -rf "$KAFKA3_STATE"; kafka3_up; }

kafka3_status() {
  local i line="kafka3   "
  for i in 1 2 3; do
    if pid_alive "$(state_pid "kafka3-$i")"; then line+=" node$i:$(kafka3_port "$i") pid $(state_pid "kafka3-$i");"
    else line+=" node$i down;"; fi
  done
  echo "$line"
}
