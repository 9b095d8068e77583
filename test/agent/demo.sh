#!/bin/bash
# The agent part of `make demo` (test/demo.sh calls it, or run it alone as
# root): `otok agent` with a UCI config holding two containers — a busybox
# httpd on the otok0 NAT bridge and a container on a macvlan (on a veth made
# for the demo, standing in for a router port such as lan4) — shows them,
# kills the agent with -9, starts it again and shows the same containers
# still running (same pids, same start time) re-adopted, then stops the
# agent gracefully and cleans up.
#
#   bash test/agent/demo.sh [OTOK [IMAGE.sqfs]]
set -euo pipefail
cd "$(dirname "$0")/../.."

OTOK=${1:-${OTOK:-$PWD/dist/otok}}
[[ $(id -u) == 0 ]] || { echo "agent demo: run as root" >&2; exit 1; }
[[ -x $OTOK ]] || { echo "agent demo: $OTOK missing (make build)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/otok-agent-demo.XXXXXX)
STATE=$WORK/state
PORT=otokdemo0
AGENT=
otok() { "$OTOK" --state "$STATE" "$@"; }
cleanup() {
  if [[ -n $AGENT ]] && kill -0 "$AGENT" 2>/dev/null; then
    kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || true
  fi
  # containers left by an interrupted demo (agent killed and not restarted)
  for n in $(otok ps -a 2>/dev/null | awk 'NR>1 {print $1}'); do
    otok rm -f "$n" >/dev/null 2>&1 || true
  done
  otok gc >/dev/null 2>&1 || true
  grep "$WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del "$PORT" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

IMG=${2:-}
if [[ -z $IMG ]]; then
  IMG=$WORK/busybox.sqfs
  bash test/testimage/build.sh "$IMG" "$WORK/rootfs" >/dev/null
fi
ip link add "$PORT" type veth peer name "${PORT%0}1"
ip link set "$PORT" up; ip link set "${PORT%0}1" up

step "agent: /etc/config/otok with two containers"
cat >"$WORK/otok" <<UCI
config agent
	option stop_timeout 3

config container web
	option image '$IMG'
	option net 'bridge'
	list ip '10.213.0.50/24'
	list command /bin/sh
	list command -c
	list command 'mkdir -p /tmp/www; echo "hello from otok" > /tmp/www/index.html; exec httpd -f -p 80 -h /tmp/www'
	option restart 'always'
	option healthcheck 'tcp 80'
	option health_interval 2

config container probe
	option image '$IMG'
	option net 'macvlan:$PORT'
	list ip '10.98.0.2/24'
	list command /bin/sh
	list command -c
	list command 'trap "exit 0" TERM; while true; do echo "probe alive at \$(date +%T)"; sleep 1; done'
	option restart 'unless-stopped'
	list depends web
UCI
sed 's/^/  /' "$WORK/otok"

start_agent() {
  "$OTOK" --state "$STATE" agent --config "$WORK/otok" 2>>"$WORK/agent.log" &
  AGENT=$!
  for _ in $(seq 100); do otok agent status >/dev/null 2>&1 && return; sleep 0.05; done
  echo "agent did not come up:"; cat "$WORK/agent.log"; exit 1
}

step "start the agent (procd runs it in the foreground the same way)"
start_agent
sleep 3
show otok agent status
show otok ps
show otok events
show wget -q -O- http://10.213.0.50/

pids_before=$(otok ps | awk 'NR>1 {print $1, $3}')

step "kill -9 the agent: the containers do not notice"
show kill -9 "$AGENT"; wait "$AGENT" 2>/dev/null || true
sleep 2
show otok ps
show wget -q -O- http://10.213.0.50/

step "procd respawns it: the new agent re-adopts them"
start_agent
show otok ps
show otok events
pids_after=$(otok ps | awk 'NR>1 {print $1, $3}')
if [[ $pids_before == "$pids_after" ]]; then
  echo "same containers, same pids, same start times: re-adopted, not restarted"
else
  echo "DIFFERENT: before: $pids_before / after: $pids_after"; exit 1
fi
show tail -n 3 "$STATE/logs/probe.log"

step "SIGTERM: containers stop in reverse dependency order (probe, then web)"
show kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || true; AGENT=
sed 's/^/  /' "$WORK/agent.log" | tail -n 6

step "nothing left behind"
echo "mounts under the state dir: $(grep -c "$STATE" /proc/self/mountinfo || true)"
echo "containers:                 $(ls "$STATE/containers" 2>/dev/null | wc -l)"
echo "otok links:                 $(ip -o link | grep -c 'otok:' || true)"
