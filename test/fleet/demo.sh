#!/bin/bash
# The fleet part of `make demo` (test/demo.sh calls it, or run it alone as
# root): a mosquitto broker on a loopback port, one router's agent joining
# the fleet from its UCI config, and the operator's controller on the same
# machine: ls, a signed one-shot command, logs, a signed group deployment
# that the device converges to, and an unsigned command refused.
#
#   bash test/fleet/demo.sh [OTOK [IMAGE.sqfs]]
set -euo pipefail
cd "$(dirname "$0")/../.."

OTOK=${1:-${OTOK:-$PWD/dist/otok}}
[[ $(id -u) == 0 ]] || { echo "fleet demo: run as root" >&2; exit 1; }
[[ -x $OTOK ]] || { echo "fleet demo: $OTOK missing (make build)" >&2; exit 1; }
command -v mosquitto >/dev/null || { echo "fleet demo: mosquitto missing (bash test/deps.sh)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/otok-fleet-demo.XXXXXX)
chmod 755 "$WORK"
IMG=${2:-}
if [[ -z $IMG ]]; then
  IMG=$WORK/busybox.sqfs
  bash test/testimage/build.sh "$IMG" "$WORK/rootfs" >/dev/null
fi
PORT=$(( 20000 + RANDOM % 20000 ))
MOSQ= AGENT=
cleanup() {
  if [[ -n $AGENT ]] && kill -0 "$AGENT" 2>/dev/null; then kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || true; fi
  if [[ -n $MOSQ ]] && kill -0 "$MOSQ" 2>/dev/null; then kill "$MOSQ"; wait "$MOSQ" 2>/dev/null || true; fi
  "$OTOK" --state "$WORK/state" gc >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

step "broker: mosquitto on 127.0.0.1:$PORT"
cat >"$WORK/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
max_queued_messages 100000
set_tcp_nodelay true
CONF
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
MOSQ=$!

step "operator: a controller key; its public half goes to the devices"
show "$OTOK" fleet keys gen "$WORK/ctl"

step "router: /etc/config/otok with a fleet section"
cat >"$WORK/otok.uci" <<CONF
config agent
	option device_id 'demo-router-1'
	option state '$WORK/state'
	option store '$WORK/store'
	option keys '$WORK/keys'

config fleet
	list broker 'tcp://127.0.0.1:$PORT'
	list group 'ring1'
	list key '$WORK/ctl.pub'
	option heartbeat '5'
CONF
sed 's/^/  /' "$WORK/otok.uci"
"$OTOK" agent --config "$WORK/otok.uci" >"$WORK/agent.log" 2>&1 &
AGENT=$!
export OTOK_FLEET_BROKER=tcp://127.0.0.1:$PORT OTOK_FLEET_KEY=$WORK/ctl.key
for _ in $(seq 50); do
  "$OTOK" fleet ls 2>/dev/null | grep -q "demo-router-1  yes" && break
  sleep 0.2
done

step "operator: who is online"
show "$OTOK" fleet ls

step "operator: a signed one-shot command, then its output"
show "$OTOK" fleet run demo-router-1 --name hello "$IMG" sh -c 'echo "hello from $(hostname), started over MQTT"'
sleep 1
show "$OTOK" fleet logs demo-router-1 hello

step "operator: a signed desired state for group ring1"
cat >"$WORK/ring1.json" <<JSON
{"containers": [{"name": "ticker", "image": "$IMG", "command": ["/bin/sh", "-c", "while true; do echo tick; sleep 1; done"]}]}
JSON
cat "$WORK/ring1.json"
show "$OTOK" fleet deploy --group ring1 --wait --timeout 30s "$WORK/ring1.json"
show "$OTOK" fleet status demo-router-1

step "an unsigned command is refused by the device"
OTOK_FLEET_KEY= "$OTOK" fleet stop demo-router-1 ticker || echo "(exit $?)"

step "router: the agent's log"
sed 's/^/  /' "$WORK/agent.log" | tail -n 12
