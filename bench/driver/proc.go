package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the driver started, in its own process group (so that a
// shell command's children are measured and stopped with it).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

var (
	procsMu   sync.Mutex
	procs     []*proc
	cleanups  []func() // run once, after the processes are stopped
	cleanOnce sync.Once
	// runCtx is cancelled on interrupt or fatal error; wrk and the build
	// commands run under it.
	runCtx, cancelRun = context.WithCancel(context.Background())
)

// start runs bin pinned to core with taskset, in a new process group.
func start(dir, name, core, bin string, args ...string) *proc {
	cmd := exec.Command("taskset", append([]string{"-c", core, bin}, args...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, io.Discard, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	procsMu.Lock()
	err := runCtx.Err()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		procsMu.Unlock()
		fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	procs = append(procs, p)
	procsMu.Unlock()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop ends p's process group: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	pg := -p.pid()
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		log.Printf("%s (pid %d) ignored SIGTERM for 10s; killing it", p.name, p.pid())
		_ = syscall.Kill(pg, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(pg, syscall.SIGKILL) // any child the leader left behind
}

// cleanup stops every started process by PID, newest first, then runs the
// registered cleanups (the temp dir). It is safe to call more than once.
func cleanup() {
	cleanOnce.Do(func() {
		cancelRun()
		procsMu.Lock()
		ps := slices.Clone(procs)
		procsMu.Unlock()
		slices.Reverse(ps)
		for _, p := range ps {
			p.stop()
		}
		for _, f := range cleanups {
			f()
		}
	})
}

// fatalf stops everything the driver started and exits.
func fatalf(format string, args ...any) {
	if runCtx.Err() != nil { // interrupted: the signal handler is cleaning up
		cleanup()
		os.Exit(130)
	}
	log.Printf("FATAL: "+format, args...)
	cleanup()
	os.Exit(1)
}

func must(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

// handleSignals stops everything on SIGINT, SIGTERM or SIGHUP.
func handleSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-ch
		log.Printf("%v: stopping every process the driver started", s)
		cleanup()
		os.Exit(130)
	}()
}

// watchdog bounds the whole run: past d, everything is stopped.
func watchdog(d time.Duration) {
	time.AfterFunc(d, func() { fatalf("the run took longer than its bound of %s", d.Round(time.Second)) })
}

// command is a bounded command whose output goes to stderr.
func command(dir string, timeout time.Duration, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(runCtx, timeout)
	time.AfterFunc(timeout, cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
	return cmd
}

// portFree fails when something already listens on addr: the driver would
// otherwise measure someone else's server.
func portFree(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fatalf("%s is in use (%v): stop whatever listens there first", addr, err)
	}
	l.Close()
}

// group lists the PIDs in process group pgid (the process and its children).
func group(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if f == nil {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// statFields are the fields of /proc/PID/stat after the command name
// (f[0] is the state, f[2] the process group, f[11] utime, f[12] stime).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return nil
	}
	return f
}

// cpuTicks is utime+stime of p's process group in clock ticks.
func (p *proc) cpuTicks() int64 {
	if !p.alive() {
		fatalf("%s (pid %d) has exited", p.name, p.pid())
	}
	var sum int64
	for _, pid := range group(p.pid()) {
		if f := statFields(pid); f != nil {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			sum += u + s
		}
	}
	return sum
}

// resetPeakRSS resets VmHWM of every process in p's group.
func (p *proc) resetPeakRSS() {
	for _, pid := range group(p.pid()) {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

// peakRSS is the sum of VmHWM over p's process group, in bytes.
func (p *proc) peakRSS() int64 {
	var sum int64
	for _, pid := range group(p.pid()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				sum += kb * 1024
			}
		}
	}
	return sum
}
