#!/bin/sh
# A stand-in for OpenWrt's uci(1) for the uci-defaults test: the config is
# a list of KEY=VALUE lines in $UCI_STATE; every change is logged to $UCI_LOG.
[ "$1" = -q ] && shift
cmd="$1"
shift
case "$cmd" in
get)
	awk -v k="$1=" 'index($0, k) == 1 { print substr($0, length(k) + 1); found = 1; exit }
		END { exit !found }' "$UCI_STATE"
	;;
set)
	k="${1%%=*}="
	awk -v k="$k" 'index($0, k) != 1' "$UCI_STATE" >"$UCI_STATE.new"
	echo "$1" >>"$UCI_STATE.new"
	mv "$UCI_STATE.new" "$UCI_STATE"
	echo "set $1" >>"$UCI_LOG"
	;;
add)
	echo "$1.@$2[0]=$2" >>"$UCI_STATE"
	echo "add $1 $2" >>"$UCI_LOG"
	echo cfg012345
	;;
commit)
	echo "commit $1" >>"$UCI_LOG"
	;;
*)
	echo "fake uci: $cmd not supported" >&2
	exit 1
	;;
esac
