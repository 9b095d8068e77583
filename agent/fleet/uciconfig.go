package fleet

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseConfig reads the `config fleet` section of /etc/config/otok through
// the agent's UCI accessors (get: an option, list: a list), so this package
// needs no UCI parser:
//
//	config fleet
//		option enabled '1'
//		list broker 'ssl://mqtt1.example.net:8883'   # tried in order, failover
//		list broker 'ssl://mqtt2.example.net:8883'
//		option device_id '94833c1a2b3c'              # default: label MAC
//		list group 'lab'
//		list key '/etc/otok/fleet/ctl.pub'           # controller keys; commands must be signed
//		option heartbeat '300'                       # seconds (or 5m)
//		option tls_ca '/etc/otok/fleet/ca.crt'
//		option tls_cert '/etc/otok/fleet/dev.crt'    # mutual TLS
//		option tls_key '/etc/otok/fleet/dev.key'
//		option username 'dev42'
//		option password 'secret'
//		option reconnect_base '0.25'                 # seconds
//		option reconnect_max '60'                    # seconds; grow with the fleet
//		option queue '256'                           # events kept while offline
//
// enabled is false when the section says enabled '0' (the session must not
// start). Unknown options are returned as warnings by the agent's own
// check; this function reports bad values.
func ParseConfig(get func(string) (string, bool), list func(string) []string, defaultID string) (cfg Config, enabled bool, err error) {
	enabled = true
	if v, ok := get("enabled"); ok {
		enabled = v == "1" || v == "true" || v == "yes" || v == "on"
	}
	cfg.Brokers = list("broker")
	cfg.DeviceID = defaultID
	if v, ok := get("device_id"); ok {
		cfg.DeviceID = v
	}
	cfg.Groups = list("group")
	for _, p := range list("key") {
		k, err := LoadPublicKey(p)
		if err != nil {
			return cfg, enabled, fmt.Errorf("fleet: list key: %w", err)
		}
		cfg.Keys = append(cfg.Keys, k)
	}
	dur := func(name string, into *time.Duration) error {
		v, ok := get(name)
		if !ok {
			return nil
		}
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			*into = d
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("fleet: option %s %q: want seconds or a duration like 5m", name, v)
		}
		*into = time.Duration(f * float64(time.Second))
		return nil
	}
	for name, into := range map[string]*time.Duration{"heartbeat": &cfg.Heartbeat, "reconnect_base": &cfg.Backoff.Base, "reconnect_max": &cfg.Backoff.Max} {
		if err := dur(name, into); err != nil {
			return cfg, enabled, err
		}
	}
	if cfg.Backoff.Base == 0 && cfg.Backoff.Max != 0 {
		cfg.Backoff.Base = DefaultBackoff.Base
	}
	if v, ok := get("queue"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			return cfg, enabled, fmt.Errorf("fleet: option queue %q: want 1..100000", v)
		}
		cfg.QueueSize = n
	}
	cfg.Username, _ = get("username")
	cfg.Password, _ = get("password")
	ca, _ := get("tls_ca")
	cert, _ := get("tls_cert")
	key, _ := get("tls_key")
	tlsWanted := ca != "" || cert != "" || key != ""
	for _, b := range cfg.Brokers {
		if s, _, _ := strings.Cut(b, "://"); s == "ssl" || s == "tls" || s == "mqtts" || s == "wss" {
			tlsWanted = true
		}
	}
	if tlsWanted {
		if cfg.TLS, err = TLSFiles(ca, cert, key); err != nil {
			return cfg, enabled, err
		}
	}
	if enabled {
		c := cfg
		if err := c.setDefaults(); err != nil {
			return cfg, enabled, err
		}
	}
	return cfg, enabled, nil
}
