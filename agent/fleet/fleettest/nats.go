package fleettest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NATSCluster is a 3-node NATS cluster with JetStream and an MQTT listener
// on each node, all on loopback (Debian's nats-server ≥ 2.9).
type NATSCluster struct {
	Nodes []*NATSNode
	dir   string
	bin   string
}

// NATSNode is one cluster node.
type NATSNode struct {
	Name               string
	Port, Cluster, Mon int
	MQTTPort           int
	URL                string // tcp://127.0.0.1:MQTTPort
	conf               string
	cmd                *exec.Cmd
	done               chan struct{}
}

// StartNATSCluster starts three nodes and waits until every MQTT listener
// answers and JetStream is ready (MQTT needs it), skipping the test when
// nats-server is not installed. Nodes are stopped by pid in t.Cleanup.
func StartNATSCluster(t testing.TB) *NATSCluster {
	t.Helper()
	c := &NATSCluster{dir: t.TempDir(), bin: NeedBinary(t, "nats-server")}
	for i := 1; i <= 3; i++ {
		n := &NATSNode{Name: fmt.Sprintf("n%d", i), Port: FreePort(t), Cluster: FreePort(t), Mon: FreePort(t), MQTTPort: FreePort(t)}
		n.URL = fmt.Sprintf("tcp://127.0.0.1:%d", n.MQTTPort)
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		routes := ""
		for _, o := range c.Nodes {
			if o != n {
				routes += fmt.Sprintf("    nats-route://127.0.0.1:%d\n", o.Cluster)
			}
		}
		store := filepath.Join(c.dir, n.Name)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 1GB
}
cluster {
  name: otok
  listen: 127.0.0.1:%d
  routes: [
%s  ]
}
mqtt {
  listen: 127.0.0.1:%d
  # retained messages and sessions are JetStream streams, replicated
  stream_replicas: 3
}
`, n.Name, n.Port, n.Mon, store, n.Cluster, routes, n.MQTTPort)
		n.conf = filepath.Join(c.dir, n.Name+".conf")
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		if err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			c.Kill(n)
		}
		if t.Failed() { // the nodes' own account of what went wrong
			for _, n := range c.Nodes {
				lines := strings.Split(strings.TrimSpace(c.Log(n)), "\n")
				if len(lines) > 80 {
					lines = lines[len(lines)-80:]
				}
				t.Logf("nats %s log (tail):\n%s", n.Name, strings.Join(lines, "\n"))
			}
		}
	})
	for _, n := range c.Nodes {
		if err := WaitPort(n.MQTTPort, 30*time.Second, n.done); err != nil {
			t.Fatalf("nats %s mqtt: %v\n%s", n.Name, err, c.Log(n))
		}
	}
	return c
}

// Start (re)starts node n.
func (c *NATSCluster) Start(n *NATSNode) error {
	lf, err := os.OpenFile(filepath.Join(c.dir, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = lf, lf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("nats-server %s: %w", n.Name, err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); lf.Close(); close(done) }(n.cmd, n.done)
	return nil
}

// Kill stops node n with SIGKILL (by pid) and waits for it.
func (c *NATSCluster) Kill(n *NATSNode) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Kill()
	<-n.done
}

// Log returns node n's log.
func (c *NATSCluster) Log(n *NATSNode) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, n.Name+".log"))
	return string(b)
}

// Ready reports whether n's MQTT port accepts connections.
func (n *NATSNode) Ready() bool {
	cn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.MQTTPort), 200*time.Millisecond)
	if err != nil {
		return false
	}
	cn.Close()
	return true
}
