# Test harness for openwrt-feed/otok/files/otok.init: stands in for
# rc.common, /lib/functions.sh and /lib/functions/procd.sh. Every procd
# call is recorded in $RECORD, one line per call, arguments separated by
# " | ". config_load reads $UCI_SH, the sample config as shell calls
# (config/option/list), as OpenWrt's uci_load feeds them.
#
# Usage: sh procd-harness.sh INIT FUNCTION...

rec() {
	local line="$1"
	shift
	for a in "$@"; do line="$line | $a"; done
	printf '%s\n' "$line" >>"$RECORD"
}

for f in procd_open_instance procd_set_param procd_append_param \
	procd_close_instance procd_add_reload_trigger \
	procd_add_reload_interface_trigger procd_add_reload_mount_trigger \
	procd_send_signal procd_kill start ubus; do
	eval "$f() { rec $f \"\$@\"; }"
done

# ubus call service list ... | jsonfilter: the agent's pid is $FAKE_PID.
jsonfilter() {
	cat >/dev/null
	[ -n "$FAKE_PID" ] && echo "$FAKE_PID"
}

append() { # VAR VALUE [SEP]
	local cur
	eval "cur=\"\${$1}\""
	eval "$1=\"\${cur:+\$cur\${3:- }}\$2\""
}

list_contains() { # VAR WORD
	local cur
	eval "cur=\" \${$1} \""
	case "$cur" in *" $2 "*) return 0 ;; esac
	return 1
}

CONFIG_SECTIONS=
CONFIG_NUM_SECTIONS=0
config() { # TYPE [NAME]
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	CONFIG_SECTION="${2:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\"\$1\""
}
option() { # NAME VALUE
	eval "CONFIG_${CONFIG_SECTION}_$1=\"\$2\""
}
list() { # NAME VALUE
	append "CONFIG_${CONFIG_SECTION}_$1" "$2"
}
config_load() {
	[ "$1" = otok ] || { echo "config_load $1: only otok is known here" >&2; return 1; }
	. "$UCI_SH"
}
config_get() { # VAR SECTION OPTION [DEFAULT]
	local v
	case "$2$3" in *[!A-Za-z0-9_]*) eval "$1=\"\$4\""; return 0 ;; esac
	eval "v=\"\${CONFIG_$2_$3-}\""
	eval "$1=\"\${v:-\$4}\""
}
config_foreach() { # FUNCTION TYPE
	local s t
	for s in $CONFIG_SECTIONS; do
		eval "t=\"\${CONFIG_${s}_TYPE}\""
		[ "$t" = "$2" ] && "$1" "$s"
	done
	return 0
}

INIT="$1"
shift
. "$INIT"
for fn in "$@"; do
	"$fn"
done
