# Apache Kafka 4.x, single-node KRaft (broker + controller in one JVM). Sourced by scripts/stack.
# shellcheck shell=bash
# The jars come from Maven Central through scripts/kafka/pom.xml: there is no other download route.

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$SCRIPTS_DIR/kafka/pom.xml")
KAFKA_LIBS="$CACHE_DIR/kafka/libs-$KAFKA_VERSION"
KAFKA_STATE="$STATE_DIR/kafka"
KAFKA_LOG="$LOG_DIR/kafka.log"

kafka_install() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then return 0; fi
  log "kafka: resolving Apache Kafka $KAFKA_VERSION jars with Maven"
  mkdir -p "$KAFKA_LIBS.tmp"
  mvn -B -q -f "$SCRIPTS_DIR/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" >"$LOG_DIR/kafka-mvn.log" 2>&1 \
    || { tail -n 30 "$LOG_DIR/kafka-mvn.log" >&2; die "mvn could not fetch the Kafka jars"; }
  rm -rf "$KAFKA_LIBS"; mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
}

# kafka_log4j FILE: warnings only, plus the line saying the server started (also used by kafka3.sh).
kafka_log4j() {
  cat > "$1" <<'PROPS'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
PROPS
}

kafka_configure() {
  mkdir -p "$KAFKA_STATE"
  cat > "$KAFKA_STATE/server.properties.new" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
# PODS: for the local Kubernetes' pods (scripts/cluster), advertised on the pod bridge's host address.
# It listens on every address because the bridge may not exist yet when the broker starts.
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,PODS://0.0.0.0:$KAFKA_PODS_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,PODS://$POD_GATEWAY:$KAFKA_PODS_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PODS:PLAINTEXT
log.dirs=$KAFKA_STATE/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fast group joins for tests: no initial delay, short sessions allowed.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.backoff.ms=1000
# Small segments keep thousands of test partitions small on disk, yet larger than the biggest record
# the service writes (nbzx/common/kafka.py TOPIC_MAX_MESSAGE_BYTES, 9 MiB): a batch over the segment size is
# refused by the broker (RECORD_LIST_TOO_LARGE).
log.segment.bytes=16777216
log.retention.check.interval.ms=10000
PROPS
  # Whether the running broker was started with other settings (an older checkout of this script).
  KAFKA_CONFIG_CHANGED=0
  cmp -s "$KAFKA_STATE/server.properties.new" "$KAFKA_STATE/server.properties" || KAFKA_CONFIG_CHANGED=1
  mv "$KAFKA_STATE/server.properties.new" "$KAFKA_STATE/server.properties"
  kafka_log4j "$KAFKA_STATE/log4j2.properties"
  if [ ! -f "$KAFKA_STATE/data/meta.properties" ]; then
    log "kafka: formatting KRaft storage"
    local cid
    [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_configure ran before kafka_install: no jars in $KAFKA_LIBS"
    cid=$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>"$LOG_DIR/kafka-format.log" | tail -1)
    java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --standalone -t "$cid" \
      -c "$KAFKA_STATE/server.properties" >>"$LOG_DIR/kafka-format.log" 2>&1 \
      || { tail -n 20 "$LOG_DIR/kafka-format.log" >&2; die "kafka storage format failed"; }
  fi
}

kafka_ready() { python3 "$SCRIPTS_DIR/lib/kafka_ready.py" "127.0.0.1:$KAFKA_PORT"; }

# Install, then configure (formatting the storage runs Kafka's own StorageTool from the jars), then start.
kafka_up() {
  local t0; t0=$(now)
  kafka_install
  kafka_configure
  if pid_alive "$(state_pid kafka)" && kafka_ready >/dev/null 2>&1; then
    if [ "$KAFKA_CONFIG_CHANGED" = 0 ]; then log "kafka: already running on :$KAFKA_PORT"; return 0; fi
    log "kafka: its settings changed; restarting it"
    kafka_down
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by a process the stack did not start"
  log "kafka: starting Apache Kafka $KAFKA_VERSION (KRaft) on :$KAFKA_PORT"
  start_bg kafka "$KAFKA_PORT" "$KAFKA_LOG" \
    java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_STATE/log4j2.properties" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_STATE/server.properties"
  wait_for "kafka metadata" 120 "$KAFKA_LOG" kafka_ready || die "kafka did not become ready"
  log "kafka: up in $(elapsed "$t0")s"
}

kafka_down() { stop_service kafka; }

# Wipe all topics and offsets: stop, delete the data dir, format, start.
kafka_reset() {
  kafka_down
  rm -rf "$KAFKA_STATE/data"
  kafka_up
}

kafka_status() {
  local pid; pid=$(state_pid kafka)
  if pid_alive "$pid" && kafka_ready >/dev/null 2>&1; then echo "kafka     up    :$KAFKA_PORT pid $pid (Apache Kafka $KAFKA_VERSION)"
  else echo "kafka     down"; fi
}
