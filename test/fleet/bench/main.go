// Command bench measures the fleet layer against the raw-paho floor, in one
// run, each on a fresh mosquitto on loopback (same generated config):
//
//	go run ./test/fleet/bench -devices 1000
//
// Floor (raw paho clients in one process, as in FACTS.md): all connected +
// retained state/status + subscribed; one group command → every reply;
// late subscriber reads all retained statuses; broker restart with paho's
// own reconnect (no jitter). Fleet (otok fleet sim: real sessions over a
// fake runtime): all online (birth + status); group deploy → every device
// reports the version (p50/p99); one signed command per device → replies;
// late controller reads all statuses; broker restart with the jittered
// backoff (peak reconnects per second, time until all are back, listen
// queue overflows); status size in CBOR vs JSON.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

var (
	devices = flag.Int("devices", 1000, "simulated devices")
	down    = flag.Duration("down", time.Second, "how long the broker stays down in the restart test")
	skipRaw = flag.Bool("no-floor", false, "skip the raw paho floor")
	cpuprof = flag.String("cpuprofile", "", "write CPU profiles of the deploy and command phases to `PREFIX`.deploy, .cmd")
)

type row struct{ what, floor, fleet, note string }

var rows []row

func add(what, floor, fl, note string) { rows = append(rows, row{what, floor, fl, note}) }

// cpu returns this process's user+system CPU time.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// syscalls returns this process's read and write system call counts.
func syscalls() (r, w int64) {
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "syscr":
			r = n
		case "syscw":
			w = n
		}
	}
	return
}

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ = 100
}

// startProfile writes a CPU profile of one phase to <cpuprofile>.<phase>.
func startProfile(phase string) {
	if *cpuprof == "" {
		return
	}
	f, err := os.Create(*cpuprof + "." + phase)
	if err != nil {
		panic(err)
	}
	pprof.StartCPUProfile(f)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func broker(dir string) *fleettest.Mosquitto {
	m, err := fleettest.Launch(fleettest.MosquittoOptions{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	return m
}

func listenOverflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		h, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range h {
			if h[j] == "ListenOverflows" && j < len(v) {
				n, _ := strconv.ParseInt(v[j], 10, 64)
				return n
			}
		}
	}
	return -1
}

// restartStats kills the broker, keeps it down, restarts it and samples
// online(): peak arrivals per second and time until all are back.
func restartStats(m *fleettest.Mosquitto, n int, connects func() uint64, online func() int) (peak int, back time.Duration, overflows int64) {
	base := connects()
	m.Kill()
	time.Sleep(*down)
	ov := listenOverflows()
	if err := m.Restart(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: restart:", err)
		os.Exit(1)
	}
	start := time.Now()
	var samples []struct {
		t time.Duration
		c uint64
	}
	for time.Since(start) < 60*time.Second {
		c := connects() - base
		samples = append(samples, struct {
			t time.Duration
			c uint64
		}{time.Since(start), c})
		if int(c) >= n && online() >= n {
			back = time.Since(start)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Peak arrivals within any 1 s window.
	j := 0
	for i := range samples {
		for samples[i].t-samples[j].t > time.Second {
			j++
		}
		if d := int(samples[i].c - samples[j].c); d > peak {
			peak = d
		}
	}
	if ov >= 0 {
		overflows = listenOverflows() - ov
	}
	return
}

func main() {
	flag.Parse()
	simGC()
	n := *devices
	dir, err := os.MkdirTemp("", "otok-fleet-bench-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	status := sampleStatus()
	statusCBOR, _ := fleet.Marshal(status)
	fmt.Fprintf(os.Stderr, "bench: %d devices, GOMAXPROCS %d\n", n, runtime.GOMAXPROCS(0))
	if !*skipRaw {
		os.Mkdir(dir+"/floor", 0o700)
		floor(dir+"/floor", n, statusCBOR)
	}
	os.Mkdir(dir+"/fleet", 0o700)
	fleetRun(dir+"/fleet", n)
	js, _ := json.Marshal(status)
	add("status size, 5 containers (CBOR / JSON)", "", fmt.Sprintf("%d / %d B = %.2f", len(statusCBOR), len(js), float64(len(statusCBOR))/float64(len(js))), "target ≤ 0.55")

	la, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nfleet benchmark: %d devices, one mosquitto on loopback, %s/%s, %d CPUs, load average %s\n\n", n, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), strings.Join(strings.Fields(string(la))[:3], " "))
	fmt.Printf("%-46s %-22s %-30s %s\n", "measure", "raw paho floor", "otok fleet", "note")
	fmt.Printf("%-46s %-22s %-30s %s\n", strings.Repeat("-", 46), strings.Repeat("-", 22), strings.Repeat("-", 30), strings.Repeat("-", 20))
	for _, r := range rows {
		fmt.Printf("%-46s %-22s %-30s %s\n", r.what, r.floor, r.fl(), r.note)
	}
}

func (r row) fl() string { return r.fleet }

var floorRes = map[string]string{}

// floor runs raw paho clients doing the same work with no fleet logic.
func floor(dir string, n int, status []byte) {
	m := broker(dir)
	defer m.Stop()
	var births atomic.Uint64
	clients := make([]mqtt.Client, n)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			id := fmt.Sprintf("raw%d", i)
			will, _ := fleet.Marshal(fleet.State{BdSeq: 1})
			o := mqtt.NewClientOptions().AddBroker(m.URL).SetClientID(id).SetCleanSession(true).
				SetBinaryWill(fleet.DevTopic(id, "state"), will, 1, true).SetOrderMatters(false).
				SetAutoReconnect(true).SetMaxReconnectInterval(2 * time.Second).SetConnectRetry(true)
			o.SetOnConnectHandler(func(c mqtt.Client) {
				c.SubscribeMultiple(map[string]byte{fleet.DevTopic(id, "cmd"): 1, "bench/group/cmd": 1}, func(c mqtt.Client, msg mqtt.Message) {
					c.Publish(fleet.DevTopic(id, "reply"), 1, false, msg.Payload())
				}).Wait()
				b, _ := fleet.Marshal(fleet.State{Online: true, BdSeq: 1, Time: 1})
				c.Publish(fleet.DevTopic(id, "state"), 1, true, b).Wait()
				c.Publish(fleet.DevTopic(id, "status"), 1, true, status).Wait()
				births.Add(1)
			})
			c := mqtt.NewClient(o)
			c.Connect().Wait()
			clients[i] = c
		}(i)
	}
	wg.Wait()
	for births.Load() < uint64(n) {
		time.Sleep(time.Millisecond)
	}
	online := time.Since(start)

	// One group command, every reply.
	ctl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID("rawctl").SetOrderMatters(false))
	ctl.Connect().Wait()
	var mu sync.Mutex
	var lat []time.Duration
	var sent time.Time
	got := make(chan struct{}, n)
	ctl.Subscribe(fleet.AllDev("reply"), 1, func(_ mqtt.Client, _ mqtt.Message) {
		mu.Lock()
		lat = append(lat, time.Since(sent))
		mu.Unlock()
		got <- struct{}{}
	}).Wait()
	c0, b0 := cpu(), procCPU(m.Pid())
	sent = time.Now()
	ctl.Publish("bench/group/cmd", 1, false, []byte{0xa0}).Wait()
	timeout := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-got:
		case <-timeout:
			i = n
		}
	}
	mu.Lock()
	p50, p99, nrep := pct(lat, 0.5), pct(lat, 0.99), len(lat)
	mu.Unlock()
	floorRes["cpu"] = fmt.Sprintf("floor %.0f+%.0f µs", float64(cpu()-c0)/1e3/float64(n), float64(procCPU(m.Pid())-b0)/1e3/float64(n))
	ctl.Disconnect(0)

	// Late subscriber.
	start = time.Now() // connect + subscribe + every retained status, as the controller does
	late := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID("rawlate").SetOrderMatters(false))
	late.Connect().Wait()
	var cnt atomic.Int64
	done := make(chan struct{})
	late.Subscribe(fleet.AllDev("status"), 1, func(_ mqtt.Client, _ mqtt.Message) {
		if cnt.Add(1) == int64(n) {
			close(done)
		}
	})
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	lateT := time.Since(start)
	late.Disconnect(0)

	floorRes["online"] = ms(online)
	floorRes["p50"], floorRes["p99"] = fmt.Sprintf("%s / %s (%d)", ms(p50), ms(p99), nrep), ""
	floorRes["late"] = ms(lateT)

	// Restart with paho's own reconnect (no jitter).
	peak, back, ov := restartStats(m, n, births.Load, func() int { return int(births.Load()) })
	floorRes["restart"] = fmt.Sprintf("%d/s, %s", peak, ms(back))
	floorRes["overflow"] = fmt.Sprint(ov)
	for _, c := range clients {
		c.Disconnect(0)
	}
}

func fleetRun(dir string, n int) {
	m := broker(dir)
	defer m.Stop()
	pub, key, _ := ed25519.GenerateKey(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()
	start := time.Now()
	sim, err := fleet.StartSim(ctx, fleet.SimConfig{Devices: n, Brokers: []string{m.URL}, Keys: []ed25519.PublicKey{pub},
		Backoff: fleet.Backoff{Base: 250 * time.Millisecond, Max: 2 * time.Second}})
	if err != nil {
		panic(err)
	}
	for sim.Online() < n && time.Since(start) < 60*time.Second {
		time.Sleep(time.Millisecond)
	}
	online := time.Since(start)
	var ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	perDev := fmt.Sprintf("%d goroutines, %d kB heap per device", (runtime.NumGoroutine()-g0)/n, (int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/int64(n)/1024)
	add("all online (birth + retained status)", floorRes["online"], ms(online), perDev)

	k, err := fleet.DialController(ctx, fleet.ControllerConfig{Brokers: []string{m.URL}, Key: key})
	if err != nil {
		panic(err)
	}
	for d, _, _ := k.Count(); d < n; d, _, _ = k.Count() {
		time.Sleep(5 * time.Millisecond)
	}
	// Group deploy: every device reports the version in its status. Wait
	// out the status rate limit (1 s) left from the births first: a real
	// deploy does not come within a second of every device's birth.
	time.Sleep(1500 * time.Millisecond)
	doc := deployDoc()
	startProfile("deploy")
	c0, b0 := cpu(), procCPU(m.Pid())
	r0, w0 := syscalls()
	sent := time.Now()
	if _, err := k.Deploy(ctx, doc); err != nil {
		panic(err)
	}
	for k.Progress("group/all", doc.Version).Reached < n && time.Since(sent) < 60*time.Second {
		time.Sleep(20 * time.Millisecond) // latencies come from StatusAt, not from this loop
	}
	// StatusAt is when the controller received each device's status.
	pprof.StopCPUProfile()
	r1, w1 := syscalls()
	fmt.Fprintf(os.Stderr, "bench: deploy: %.1f reads, %.1f writes per device\n", float64(r1-r0)/float64(n), float64(w1-w0)/float64(n))
	var dl []time.Duration
	for _, d := range k.Devices() {
		if d.Status != nil && d.Status.Reached["group/all"].Version == doc.Version {
			dl = append(dl, d.StatusAt.Sub(sent))
		}
	}
	add("group deploy → all report version p50 / p99", floorRes["p50"], fmt.Sprintf("%s / %s (%d)", ms(pct(dl, .5)), ms(pct(dl, .99)), len(dl)),
		fmt.Sprintf("CPU/device (process+broker): %.0f+%.0f µs, %s", float64(cpu()-c0)/1e3/float64(n), float64(procCPU(m.Pid())-b0)/1e3/float64(n), floorRes["cpu"]))

	// One signed command per device, all at once.
	startProfile("cmd")
	var mu sync.Mutex
	var cl []time.Duration
	var wg sync.WaitGroup
	fails := 0
	sent = time.Now()
	for _, s := range sim.Sessions {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			r, err := k.Do(ctx, fleet.NewCommand(id, "ps", fleet.Args{}, 30*time.Second), nil)
			mu.Lock()
			if err != nil || r.Code != "" {
				fails++
			} else {
				cl = append(cl, time.Since(sent))
			}
			mu.Unlock()
		}(s.ID())
	}
	wg.Wait()
	pprof.StopCPUProfile()
	add("signed cmd to each device → replies p50 / p99", "", fmt.Sprintf("%s / %s (%d ok, %d failed)", ms(pct(cl, .5)), ms(pct(cl, .99)), len(cl), fails), "N commands, Ed25519 verify each")
	k.Close()

	// Late controller reads every retained status.
	start = time.Now()
	k2, err := fleet.DialController(ctx, fleet.ControllerConfig{Brokers: []string{m.URL}})
	if err != nil {
		panic(err)
	}
	for time.Since(start) < 30*time.Second {
		if _, c, _ := k2.Count(); c >= n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	add("late subscriber reads all retained statuses", floorRes["late"], ms(time.Since(start)), "connect, subscribe, decode every state+status")
	k2.Close()

	var connects func() uint64 = func() uint64 {
		var c uint64
		for _, s := range sim.Sessions {
			c += s.Connects()
		}
		return c
	}
	peak, back, ov := restartStats(m, n, connects, sim.Online)
	add(fmt.Sprintf("broker restart (down %s): peak/s, all back", *down), floorRes["restart"], fmt.Sprintf("%d/s, %s", peak, ms(back)), "floor: paho reconnect, no jitter")
	add("  listen queue overflows during restart", floorRes["overflow"], fmt.Sprint(ov), "/proc/net/netstat, whole host")
	cancel()
	sim.Wait()
}

func deployDoc() *fleet.Desired {
	im := func(name string) fleet.ImageRef {
		u := "https://images.example.net/" + name + ".otok"
		return fleet.ImageRef{Name: name, URL: u, Digest: fleet.FakeDigest(u), Version: "1.0"}
	}
	d := &fleet.Desired{Scope: "group/all", Version: uint64(time.Now().Unix()), Images: []fleet.ImageRef{im("busybox"), im("adguard")}}
	for _, c := range []string{"dns", "httpd", "ntp", "mon", "vpn"} {
		img := "busybox"
		if c == "dns" {
			img = "adguard"
		}
		d.Containers = append(d.Containers, fleet.ContainerSpec{Name: c, Image: img, Net: "bridge", Restart: "always"})
	}
	return d
}

// sampleStatus is a status with 5 containers and 2 images, as a device
// has it after deployDoc, with addresses, usage and an exit.
func sampleStatus() fleet.Status {
	a := fleet.NewFakeAgent("GL.iNet GL-MT6000", "aarch64_cortex-a53")
	d := deployDoc()
	a.Apply(context.Background(), d.Images, d.Containers)
	st, _ := a.Status(context.Background())
	st.Device, st.BdSeq, st.Time = "94833c1a2b3c", uint64(time.Now().UnixMilli()), uint64(time.Now().UnixMilli())
	st.Groups = []string{"all"}
	st.Reached = map[string]fleet.Reached{"group/all": {Version: d.Version}}
	for i := range st.Containers {
		st.Containers[i].Usage = &fleet.Usage{CPUms: 123456, Mem: 38 << 20, Pids: 12, RxB: 1 << 30, TxB: 1 << 29}
		st.Containers[i].Restarts = uint32(i)
	}
	st.Containers[2].State = "exited"
	st.Containers[2].Exit = &fleet.Exit{Code: 1, Reason: "exit status 1"}
	return st
}

// simGC: one process holding N simulated devices has one big heap (N × 40
// kB and N × 15 goroutine stacks) that a real device does not; with the
// default GOGC the collector's share grows with N (at 3,000 devices it
// doubled the CPU per device). Same setting for the floor and the fleet;
// an explicit GOGC wins.
func simGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(2 << 30)
	}
}
