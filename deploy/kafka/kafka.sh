#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft) for tests and CI, run from the
# project's own jars, fetched by Maven.
#
#   deploy/kafka/kafka.sh install   fetch the jars (once) into the cache
#   deploy/kafka/kafka.sh start     format (first time) and start the broker; prints KAFKA_BROKERS
#   deploy/kafka/kafka.sh stop      stop it (SIGTERM, then SIGKILL after 30 s)
#   deploy/kafka/kafka.sh restart   stop, then start with the same data
#   deploy/kafka/kafka.sh status    exit 0 when it answers
#
# Environment: KAFKA_VERSION (4.4.0), KAFKA_PORT (29092), KAFKA_DIR (work
# directory, default $TMPDIR/apimeter-kafka), APIMETER_CACHE_DIR.
set -euo pipefail

version="${KAFKA_VERSION:-4.4.0}"
port="${KAFKA_PORT:-29092}"
cport=$((port + 1))
cache="${APIMETER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apimeter}/kafka/$version"
work="${KAFKA_DIR:-${TMPDIR:-/tmp}/apimeter-kafka}"
pidfile="$work/kafka.pid"

install() {
  if [[ -f "$cache/.complete" ]]; then return; fi
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is needed to fetch Apache Kafka" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka.sh: Java 17+ is needed to run Apache Kafka" >&2; exit 1; }
  mkdir -p "$cache"
  cat > "$cache/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>apimeter</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  echo "kafka.sh: fetching Apache Kafka $version jars (once)" >&2
  (cd "$cache" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=libs -DincludeScope=runtime >&2)
  touch "$cache/.complete"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  install
  mkdir -p "$work"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "KAFKA_BROKERS=127.0.0.1:$port"
    return
  fi
  cat > "$work/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$work/logs
num.partitions=8
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  cat > "$work/log4j2.properties" <<LOG
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$work/kafka.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
LOG
  local cp="$cache/libs/*"
  local jvm=(-Xms256m -Xmx1g -Dlog4j2.configurationFile="$work/log4j2.properties")
  if [[ ! -f "$work/logs/meta.properties" ]]; then
    java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format --standalone \
      -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid)" -c "$work/server.properties" >"$work/format.log" 2>&1 \
      || { cat "$work/format.log" >&2; exit 1; }
  fi
  nohup java "${jvm[@]}" -cp "$cp" kafka.Kafka "$work/server.properties" >"$work/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if answers; then
      echo "KAFKA_BROKERS=127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka.sh: the broker exited; see $work/stdout.log and $work/kafka.log" >&2
      tail -20 "$work/stdout.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  echo "kafka.sh: the broker did not answer on 127.0.0.1:$port within 60 s" >&2
  exit 1
}

stop() {
  [[ -f "$pidfile" ]] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) answers ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
