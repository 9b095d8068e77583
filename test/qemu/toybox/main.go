// Command toybox is a tiny static multi-call program for otok's qemu guests
// and their container images where no busybox exists (big-endian mips), and
// for workloads busybox has no applet for. Called by the name of a link or
// as `toybox NAME ARGS…`:
//
//	true, false          exit 0 / 1
//	exit N               exit with status N
//	sleep SECONDS        sleep (fractions allowed)
//	memhog MIB           lock its own program text in memory, allocate and
//	                     touch MIB MiB, then sleep (OOM tests)
//	forkbomb N           start N sleeping children (pids limit tests); exit 0
//	                     if all started, 1 if one fails
//	udpecho PORT         echo UDP datagrams forever
//	udpsend ADDR:PORT MSG  send MSG, wait ≤ 3 s for the echo; exit 0 if it
//	                     came back (the ping of the network steps)
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	args := os.Args
	name := filepath.Base(args[0])
	if name == "toybox" {
		if len(args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: toybox NAME ARGS…")
			os.Exit(2)
		}
		args = args[1:]
		name = args[0]
	}
	os.Exit(run(name, args[1:]))
}

func arg(a []string, i int) string {
	if i < len(a) {
		return a[i]
	}
	return ""
}

func run(name string, a []string) int {
	switch name {
	case "true":
		return 0
	case "false":
		return 1
	case "exit":
		n, _ := strconv.Atoi(arg(a, 0))
		return n
	case "sleep":
		f, _ := strconv.ParseFloat(arg(a, 0), 64)
		time.Sleep(time.Duration(f * float64(time.Second)))
		return 0
	case "memhog":
		mib, _ := strconv.Atoi(arg(a, 0))
		if n, err := lockFileMappings(); err != nil {
			fmt.Fprintf(os.Stderr, "memhog: mlock of the program text: %v (an OOM may turn into a refault livelock)\n", err)
		} else {
			fmt.Printf("memhog: %d KiB of program text locked\n", n>>10)
		}
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Printf("memhog: %d MiB allocated\n", len(keep))
		time.Sleep(time.Hour)
		return 0
	case "forkbomb":
		n, _ := strconv.Atoi(arg(a, 0))
		self, _ := os.Executable()
		for i := 0; i < n; i++ {
			c := exec.Command(self, "sleep", "30")
			if err := c.Start(); err != nil {
				fmt.Printf("forkbomb: child %d: %v\n", i, err)
				return 1
			}
		}
		fmt.Printf("forkbomb: %d children started\n", n)
		return 0
	case "udpecho":
		pc, err := net.ListenPacket("udp", ":"+arg(a, 0))
		if err != nil {
			fmt.Println("udpecho:", err)
			return 1
		}
		buf := make([]byte, 2048)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return 1
			}
			_, _ = pc.WriteTo(buf[:n], addr)
		}
	case "udpsend":
		c, err := net.Dial("udp", arg(a, 0))
		if err != nil {
			fmt.Println("udpsend:", err)
			return 1
		}
		msg := []byte(arg(a, 1))
		buf := make([]byte, 2048)
		for try := 0; try < 6; try++ {
			_, _ = c.Write(msg)
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if n, err := c.Read(buf); err == nil && string(buf[:n]) == string(msg) {
				fmt.Println("udpsend: echo ok")
				return 0
			}
		}
		fmt.Println("udpsend: no echo")
		return 1
	}
	fmt.Fprintf(os.Stderr, "toybox: unknown command %q\n", name)
	return 127
}
