package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuSnap is the CPU time used so far by each speaker process of a lab (one per node) and
// by this process's finished children (birdc).
type cpuSnap struct {
	at       time.Time
	procs    []time.Duration
	children time.Duration
}

func takeCPU(pids []int) (cpuSnap, error) {
	s := cpuSnap{at: time.Now(), procs: make([]time.Duration, len(pids))}
	for i, pid := range pids {
		d, err := threadsCPU(pid)
		if err != nil {
			return s, err
		}
		s.procs[i] = d
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_CHILDREN, &ru); err != nil {
		return s, err
	}
	s.children = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return s, nil
}

// threadsCPU is a process's time on a CPU, summed over its live threads from the first field
// of /proc/<pid>/task/<tid>/schedstat (nanoseconds): for the fraction of a millisecond a
// node spends on one block, where cpuTime's ticks are too coarse. A thread that ends takes
// its time with it, so it is only for the speakers, whose threads live as long as they do
// (an agent's Go threads, BIRD's one).
func threadsCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		field, _, _ := bytes.Cut(bytes.TrimSpace(data), []byte(" "))
		ns, err := strconv.ParseInt(string(field), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d task %s: schedstat %q: %w", pid, t.Name(), data, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// blockCPU adds up what the speakers spent on the measured blocks: in each block's window
// (its call to a settling time after its last route) and in the gaps between blocks, whose
// rate (keepalives, timers, the learned-routes record an agent writes a second after a
// burst) is taken off the windows.
type blockCPU struct {
	origin, others, children time.Duration // in the windows, summed over the blocks
	window, gap              time.Duration // the windows' and the gaps' length, summed
	gapCPU                   time.Duration // every speaker's CPU in the gaps, summed
	blocks, nodes            int
}

func (c *blockCPU) addWindow(before, after cpuSnap, origin int) {
	c.blocks++
	c.nodes = len(after.procs)
	c.window += after.at.Sub(before.at)
	c.children += after.children - before.children
	for i := range after.procs {
		d := after.procs[i] - before.procs[i]
		if i == origin {
			c.origin += d
		} else {
			c.others += d
		}
	}
}

func (c *blockCPU) addGap(before, after cpuSnap) {
	c.gap += after.at.Sub(before.at)
	for i := range after.procs {
		c.gapCPU += after.procs[i] - before.procs[i]
	}
	c.gapCPU += after.children - before.children
}

// perBlock is the CPU per block, with the gaps' rate per speaker taken off: the origin's
// speaker, each other node's, and the children's (birdc; nothing for the agents).
func (c *blockCPU) perBlock() (origin, eachOther, children time.Duration) {
	if c.blocks == 0 || c.nodes < 2 {
		return 0, 0, 0
	}
	var idle time.Duration // one speaker's background CPU over all the windows
	if c.gap > 0 {
		idle = time.Duration(float64(c.gapCPU) / float64(c.nodes) * float64(c.window) / float64(c.gap))
	}
	n := time.Duration(c.blocks)
	origin = max(c.origin-idle, 0) / n
	eachOther = max(c.others-time.Duration(c.nodes-1)*idle, 0) / n / time.Duration(c.nodes-1)
	return origin, eachOther, c.children / n
}

// cpuTime is a process's user and system time so far (/proc/<pid>/stat, clock ticks of
// 1/100 s), threads that ended included: for windows of a second or more, and for processes
// whose threads come and go (this one's locked OS threads end with their goroutines).
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count from after it.
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
