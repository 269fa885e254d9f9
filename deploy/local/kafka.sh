#!/usr/bin/env bash
# Apache Kafka for the local stack and the tests, offline: the broker's own
# jars from Maven Central (version pinned in deploy/local/kafka/pom.xml), run
# as a single-node KRaft server (broker + controller in one JVM) on loopback.
#
#   deploy/local/kafka.sh install               # resolves the jars once; prints the libs folder
#   deploy/local/kafka.sh run DIR PORT CPORT [USERS]
#                                               # foreground: formats DIR once, then runs the broker
#   deploy/local/kafka.sh start [PORT]          # background, data in .local/kafka/data; prints host:port
#   deploy/local/kafka.sh stop                  # stops the one `start` started
#
# With USERS (a file of `name password` lines, the first being the admin), the client
# listener is SASL_PLAINTEXT with SCRAM-SHA-512 and the StandardAuthorizer denies whatever
# no ACL allows; the admin is the only super user on it, and every user's SCRAM credential
# is written at format time. The ACLs themselves are created by LocalBroker through the
# admin API (patroli_contracts::access). The controller listener stays PLAINTEXT on
# loopback (KRaft cannot check SCRAM there before the metadata is loaded), so its
# anonymous principal is a super user too: the secured mode guards the client port only.
#
# `patroli_runtime::LocalBroker` runs `run` itself (one broker per test
# binary, one per `patroli up`), so this file is the one place that knows how
# the broker is configured and started.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=${PATROLI_TOOLS_DIR:-$root/.local}
pom=$here/kafka/pom.xml
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
home=$tools/kafka-$version
heap=${PATROLI_KAFKA_HEAP:--Xms256m -Xmx512m}

need() {
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    cat >&2 <<MSG
Apache Kafka $version needs Java 17 or newer and Maven, and this machine lacks
$(command -v java >/dev/null || echo "java ")$(command -v mvn >/dev/null || echo "mvn").
On Debian or Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless maven
MSG
    exit 1
  fi
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/ *java.specification.version = //p')
  if [ "${major%%.*}" -lt 17 ] 2>/dev/null; then
    echo "Apache Kafka $version needs Java 17 or newer; java here is $major." >&2
    echo "On Debian or Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless" >&2
    exit 1
  fi
}

install() {
  need
  # The marker is written last, so an interrupted install is never mistaken
  # for a good one: the next call starts over.
  if [ ! -f "$home/.complete" ]; then
    echo "installing Apache Kafka $version from Maven Central into $home ..." >&2
    rm -rf "$home.partial"
    mkdir -p "$home.partial"
    # --strict-checksums: a jar that does not match its published checksum
    # fails the install instead of warning.
    if ! mvn -B -q --strict-checksums -f "$pom" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$home.partial/libs" >"$home.partial/mvn.log" 2>&1; then
      echo "Maven could not resolve Apache Kafka $version; its log:" >&2
      cat "$home.partial/mvn.log" >&2
      exit 1
    fi
    cp "$here/kafka/log4j2.yaml" "$home.partial/"
    touch "$home.partial/.complete"
    rm -rf "$home" && mv "$home.partial" "$home"
  fi
  echo "$home/libs"
}

# The broker's settings for a single-node development cluster: every internal
# topic with one replica and one partition (fast start, nothing to replicate),
# no group-join delay (tests rebalance often), topics created explicitly as in
# production.
write_config() {
  local dir=$1 port=$2 cport=$3
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
}

# The secured variant of the client listener (see the header): replaces the listener lines.
secure_config() {
  local dir=$1 port=$2 cport=$3 users=$4 admin admin_password
  read -r admin admin_password <"$users"
  sed -i -e '/^listeners=/d' -e '/^advertised.listeners=/d' -e '/^inter.broker.listener.name=/d' \
    -e '/^listener.security.protocol.map=/d' "$dir/server.properties"
  cat >>"$dir/server.properties" <<PROPS
listeners=SASL_PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$admin" password="$admin_password";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$admin;User:ANONYMOUS
PROPS
}

run() {
  [ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: $0 run DATA_DIR PORT CONTROLLER_PORT [USERS]" >&2; exit 2; }
  local dir=$1 port=$2 cport=$3 users=${4:-} libs
  libs=$(install)
  mkdir -p "$dir"
  write_config "$dir" "$port" "$cport"
  local scram=()
  if [ -n "$users" ]; then
    secure_config "$dir" "$port" "$cport" "$users"
    local name password
    while read -r name password; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$password]")
    done <"$users"
  fi
  # Serial GC and C1-only JIT: on 2 cores shared with the classifier and a
  # compiler, the JVM's own start-up work is what delays a test; a local
  # broker's peak throughput is never the limit.
  local java=(java $heap -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Dlog4j2.configurationFile="$home/log4j2.yaml" -cp "$libs/*")
  if [ ! -f "$dir/logs/meta.properties" ]; then
    # A cluster id is 16 random bytes in unpadded URL-safe base64.
    local id
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    "${java[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 || {
      echo "formatting the Kafka storage in $dir failed:" >&2
      cat "$dir/format.log" >&2
      exit 1
    }
  fi
  exec "${java[@]}" kafka.Kafka "$dir/server.properties"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

state=$tools/kafka

start() {
  install >/dev/null
  local port=${1:-$(free_port)} cport
  cport=$(free_port)
  mkdir -p "$state"
  nohup "$0" run "$state/data" "$port" "$cport" >"$state/broker.log" 2>&1 &
  echo $! >"$state/broker.pid"
  for _ in $(seq 1 600); do
    if grep -q "Kafka Server started" "$state/broker.log" 2>/dev/null; then
      echo "127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$(cat "$state/broker.pid")" 2>/dev/null; then
      echo "Kafka exited during start-up; its log ($state/broker.log):" >&2
      tail -n 40 "$state/broker.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "Kafka did not start within 60 s; its log: $state/broker.log" >&2
  return 1
}

stop() {
  if [ -f "$state/broker.pid" ]; then
    kill "$(cat "$state/broker.pid")" 2>/dev/null || true
    rm -f "$state/broker.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  run) shift; run "$@" ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 install | run DATA_DIR PORT CONTROLLER_PORT [USERS] | start [PORT] | stop" >&2; exit 2 ;;
esac
