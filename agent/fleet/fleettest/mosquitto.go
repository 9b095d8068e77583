// Package fleettest starts real MQTT brokers for tests: mosquitto on a
// free loopback port with a generated configuration, and a 3-node NATS
// cluster with its MQTT listeners; plus TLS certificates generated at test
// time. Brokers are stopped by pid in t.Cleanup. Tests skip, saying why,
// when the broker binary is missing.
package fleettest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a running mosquitto.
type Mosquitto struct {
	Port    int    // plain MQTT listener
	TLSPort int    // TLS listener (0 without TLS)
	URL     string // tcp://127.0.0.1:Port
	TLSURL  string // ssl://127.0.0.1:TLSPort
	Certs   *Certs // with TLS

	bin  string
	dir  string
	conf string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// MosquittoOptions tunes the broker.
type MosquittoOptions struct {
	TLS bool   // add a listener with mutual TLS (client certificates required)
	Dir string // for config, log and certificates (StartMosquitto: a test temp dir)
	// Users, when set, turns anonymous access off and allows only these
	// user names with their passwords (via mosquitto_passwd).
	Users map[string]string
	// Extra lines for mosquitto.conf.
	Extra []string
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NeedBinary skips the test when name is not installed.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(d, name)); err == nil {
				return filepath.Join(d, name)
			}
		}
		t.Skipf("%s not installed (apt-get install %s, or make deps)", name, map[string]string{"mosquitto": "mosquitto", "nats-server": "nats-server"}[name])
	}
	return p
}

// StartMosquitto starts mosquitto on free loopback ports (see Launch),
// skipping the test when mosquitto is not installed, and stops it by pid in
// t.Cleanup.
func StartMosquitto(t testing.TB, o MosquittoOptions) *Mosquitto {
	t.Helper()
	NeedBinary(t, "mosquitto")
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	m, err := Launch(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// Launch starts mosquitto in o.Dir (required) on free loopback ports. The
// config raises max_queued_messages (the default 1000 silently drops QoS 1
// replies to a controller at a few thousand devices) and sets
// set_tcp_nodelay (3× faster retained reads). The caller stops it.
func Launch(o MosquittoOptions) (*Mosquitto, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			return nil, fmt.Errorf("mosquitto not installed")
		}
	}
	m := &Mosquitto{bin: bin, dir: o.Dir}
	if m.Port, err = freePort(); err != nil {
		return nil, err
	}
	m.URL = fmt.Sprintf("tcp://127.0.0.1:%d", m.Port)
	conf := []string{
		"per_listener_settings false",
		"allow_anonymous true",
		"persistence false",
		"user root",
		"max_queued_messages 1000000",
		"max_inflight_messages 0",
		"set_tcp_nodelay true",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		fmt.Sprintf("listener %d 127.0.0.1", m.Port),
		"max_connections -1",
	}
	if o.TLS {
		if m.Certs, err = GenerateCerts(m.dir); err != nil {
			return nil, err
		}
		if m.TLSPort, err = freePort(); err != nil {
			return nil, err
		}
		m.TLSURL = fmt.Sprintf("ssl://127.0.0.1:%d", m.TLSPort)
		conf = append(conf,
			fmt.Sprintf("listener %d 127.0.0.1", m.TLSPort),
			"cafile "+m.Certs.CA,
			"certfile "+m.Certs.ServerCert,
			"keyfile "+m.Certs.ServerKey,
			"require_certificate true",
			"use_identity_as_username true",
		)
	}
	if len(o.Users) > 0 {
		pw := filepath.Join(m.dir, "passwd")
		for u, p := range o.Users {
			args := []string{"-b", pw, u, p}
			if _, err := os.Stat(pw); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("mosquitto_passwd: %v: %s", err, out)
			}
		}
		conf[1] = "allow_anonymous false"
		conf = append(conf, "password_file "+pw)
	}
	conf = append(conf, o.Extra...)
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	return m, m.start()
}

func (m *Mosquitto) start() error {
	lf, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	m.log = lf
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = lf, lf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("mosquitto: %w", err)
	}
	m.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(m.cmd, m.done)
	if err := WaitPort(m.Port, 5*time.Second, m.done); err != nil {
		m.Stop()
		return fmt.Errorf("mosquitto on port %d: %v\n%s", m.Port, err, m.Log())
	}
	return nil
}

// WaitPort waits until 127.0.0.1:port accepts connections.
func WaitPort(port int, d time.Duration, exited <-chan struct{}) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		select {
		case <-exited:
			return fmt.Errorf("exited")
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not listening after %s", d)
}

// Pid returns the broker's pid.
func (m *Mosquitto) Pid() int { return m.cmd.Process.Pid }

// Stop terminates the broker (SIGTERM by pid, SIGKILL after 5 s).
func (m *Mosquitto) Stop() { m.signal(syscall.SIGTERM) }

// Kill kills the broker with SIGKILL: no clean shutdown.
func (m *Mosquitto) Kill() { m.signal(syscall.SIGKILL) }

func (m *Mosquitto) signal(sig syscall.Signal) {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.done:
	default:
		m.cmd.Process.Signal(sig)
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			m.cmd.Process.Kill()
			<-m.done
		}
	}
	if m.log != nil {
		m.log.Close()
		m.log = nil
	}
}

// Restart starts the broker again on the same ports (after Stop or Kill).
func (m *Mosquitto) Restart() error {
	m.Stop()
	return m.start()
}

// Log returns the broker's log so far.
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
	return string(b)
}
