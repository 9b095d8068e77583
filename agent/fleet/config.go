package fleet

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is a device's fleet configuration: the `config fleet` section of
// /etc/config/otok, parsed by agent (option names in brackets).
type Config struct {
	Brokers  []string // [list broker] tcp://, ssl:// (= tls://, mqtts://) URLs, tried in order, rotating on failure
	DeviceID string   // [option device_id] default: the board's label MAC, lower-case hex without colons
	Groups   []string // [list group]
	// Keys are the controller public keys the device trusts [list key FILE].
	// When any are set, commands and desired documents must be signed.
	Keys      []ed25519.PublicKey
	Heartbeat time.Duration // [option heartbeat] full status at least this often; default 5 min
	Debounce  time.Duration // a status after a burst of changes at most this late; default 1 s
	KeepAlive time.Duration // MQTT keepalive; default 60 s
	Backoff   Backoff       // [option reconnect_base, reconnect_max]
	QueueSize int           // offline event queue; default 256 events
	Username  string        // [option username]
	Password  string        // [option password]
	TLS       *tls.Config   // from [option ca, cert, key]; nil for tcp:// brokers
	Version   string        // agent version for the status document
	// VersionsFile keeps the highest desired version accepted per scope
	// (a few bytes, rewritten only when a new version is accepted), so a
	// replayed older document is refused after an agent restart or a
	// reboot too. "" keeps them in RAM only.
	VersionsFile string
	// Gate, when set, is a semaphore shared by sessions in one process
	// (`fleet sim`): at most cap(Gate) of them handshake at once, as a
	// real fleet's boots are spread out. nil on a device.
	Gate chan struct{}
	// Verified, when set, is a verification cache shared by sessions in
	// one process (`fleet sim`); nil on a device.
	Verified *VerifyCache
}

func (c *Config) setDefaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("fleet: no broker configured")
	}
	if !ValidID(c.DeviceID) {
		return fmt.Errorf("fleet: device id %q: want 1-64 of [A-Za-z0-9_:-]", c.DeviceID)
	}
	for _, g := range c.Groups {
		if !ValidID(g) {
			return fmt.Errorf("fleet: group %q: want 1-64 of [A-Za-z0-9_:-]", g)
		}
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Minute
	}
	if c.Debounce <= 0 {
		c.Debounce = time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 60 * time.Second
	}
	if c.Backoff.Base <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 256
	}
	return nil
}

// TLSFiles builds a client TLS configuration: caFile verifies the broker
// (system roots if empty); certFile and keyFile, when set, are the client
// certificate for mutual TLS.
func TLSFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fleet: ca %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// DeviceIDFromMAC turns a MAC address into the default device id.
func DeviceIDFromMAC(mac string) string {
	return strings.ToLower(strings.NewReplacer(":", "", "-", "").Replace(mac))
}
