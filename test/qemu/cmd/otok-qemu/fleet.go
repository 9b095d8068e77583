package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// fleetHost is the host side of the scenario's fleet step: a mosquitto on
// loopback (the guest reaches it as 10.0.2.2) and, once the guest says the
// agent is up, `otok fleet` against the device; the verdict is served on a
// TCP port the guest polls.
type fleetHost struct {
	hostOtok string
	device   string
	port     int // mosquitto
	donePort int
	cmd      *exec.Cmd
	logPath  string
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startFleetHost returns nil and the reason when the fleet step cannot run.
func startFleetHost(hostOtok, dir, device string) (*fleetHost, string) {
	if out, err := exec.Command(hostOtok, "help").CombinedOutput(); err != nil || !strings.Contains(string(out), "\n  fleet ") {
		return nil, "otok fleet not implemented yet"
	}
	mosq, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/mosquitto"); err2 != nil {
			return nil, "mosquitto not installed on the host (make deps)"
		}
		mosq = "/usr/sbin/mosquitto"
	}
	f := &fleetHost{hostOtok: hostOtok, device: device, logPath: filepath.Join(dir, "mosquitto.log")}
	if f.port, err = freePort(); err != nil {
		return nil, err.Error()
	}
	if f.donePort, err = freePort(); err != nil {
		return nil, err.Error()
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	// max_queued_messages raised and nodelay on, as FACTS.md says tests must.
	c := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nset_tcp_nodelay true\npersistence false\nlog_dest file %s\nlog_type all\n", f.port, f.logPath)
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		return nil, err.Error()
	}
	f.cmd = exec.Command(mosq, "-c", conf)
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		return nil, "mosquitto: " + err.Error()
	}
	for i := 0; i < 50; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", f.port)); err == nil {
			c.Close()
			return f, ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.stop()
	return nil, "mosquitto did not start listening"
}

func (f *fleetHost) stop() {
	if f.cmd != nil && f.cmd.Process != nil {
		_ = f.cmd.Process.Kill()
		_ = f.cmd.Wait()
	}
}

func (f *fleetHost) broker() string { return fmt.Sprintf("tcp://127.0.0.1:%d", f.port) }

// check runs the host side and serves the verdict ("ok …", "skip (…)",
// "fail …") to the guest once.
func (f *fleetHost) check(ctx context.Context) string {
	verdict := f.verdict(ctx)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", f.donePort))
	if err != nil {
		return "fail cannot serve the verdict: " + err.Error()
	}
	go func() {
		defer l.Close()
		_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Minute))
		c, err := l.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte(verdict + "\n"))
		c.Close()
	}()
	return verdict
}

func (f *fleetHost) verdict(ctx context.Context) string {
	// Options before DEV: `otok fleet status DEV --broker …` is refused
	// ("want DEV"), the other subcommands take either order.
	run := func(sub string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		full := append([]string{"fleet", sub, "--broker", f.broker(), "--timeout", "20s"}, args...)
		out, err := exec.CommandContext(ctx, f.hostOtok, full...).CombinedOutput()
		return string(out), err
	}
	// Wait for the device's birth (retained state/status): the agent
	// connects when it starts, the guest says fleet-ready after that.
	deadline := time.Now().Add(60 * time.Second)
	var out string
	var err error
	for {
		out, err = run("status", f.device)
		if err == nil && strings.Contains(out, "(online") {
			break
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not online")
			}
			return "fail otok fleet status " + f.device + " (60 s after the agent started): " + oneLine(err.Error()+": "+lastLine(out))
		}
		time.Sleep(2 * time.Second)
	}
	// A command round trip: the agent in the guest answers with its
	// containers (the scenario's agent runs c1…c5).
	ps, err := run("ps", f.device)
	if err != nil {
		return "fail otok fleet ps " + f.device + ": " + oneLine(err.Error()+": "+lastLine(ps))
	}
	for _, c := range []string{"c1", "c2", "c3", "c4", "c5"} {
		if !strings.Contains(ps, c) {
			return "fail otok fleet ps " + f.device + " does not list " + c + ": " + oneLine(ps)
		}
	}
	return "ok otok fleet status (online) and ps (c1…c5) answered by " + f.device + " over mosquitto at 10.0.2.2"
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}
