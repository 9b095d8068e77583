package board

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is what /proc/meminfo says, in bytes.
type Memory struct {
	Total     uint64
	Available uint64
}

// ReadMemory parses MemTotal and MemAvailable from meminfo.
func ReadMemory(procRoot string) (*Memory, error) {
	path := filepath.Join(procRoot, "meminfo")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &Memory{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			m.Total = kb << 10
		case "MemAvailable:":
			m.Available = kb << 10
		}
	}
	if m.Total == 0 {
		return nil, fmt.Errorf("%s: no MemTotal", path)
	}
	return m, nil
}

func checkMemory(procRoot string) Feature {
	f := Feature{Group: "memory", Name: "ram", Required: true}
	m, err := ReadMemory(procRoot)
	if err != nil {
		f.Status, f.Detail = Missing, err.Error()
		return f
	}
	f.Detail = fmt.Sprintf("%s total, %s available", HumanBytes(m.Total), HumanBytes(m.Available))
	switch {
	case m.Available < 16<<20:
		f.Status, f.Hint = Limited, "less than 16 MiB available: small containers only"
	default:
		f.Status = OK
	}
	return f
}
