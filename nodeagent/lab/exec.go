package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long an agent gets after SIGTERM before its process group is killed.
var StopTimeout = 5 * time.Second

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// startChild starts cmd from one OS thread that never exits. Children get SIGTERM via
// Pdeathsig when the test process dies; Pdeathsig fires when the forking *thread* exits,
// so forking from a permanent thread avoids spurious kills.
func startChild(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnCh {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnCh <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// ExecAgent returns a StartAgent that runs
//
//	<binary> serve --cluster C --node N --netns P --listen-fd 3 --tls-cert F --tls-key F
//	         --client-ca F --state-dir D --boot-id-file F [--cni-conf-dir D] [--cni-ipam-data-dir D]
//
// with the listener as fd 3, output appended to cfg.LogFile, in its own process group.
// stop sends SIGTERM and waits; after StopTimeout it kills the process group. Only the
// process started here is signalled.
func ExecAgent(binary string) StartAgent {
	return func(cfg AgentConfig) (func() error, error) {
		cmd, closeFiles, err := AgentCommand(binary, cfg)
		if err != nil {
			return nil, err
		}
		defer closeFiles()
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
		if err := startChild(cmd); err != nil {
			return nil, err
		}
		// The child owns the socket now: closing ours means a dead agent refuses
		// connections instead of leaving them queued.
		cfg.Listener.Close()
		pid := cmd.Process.Pid
		exited := make(chan struct{})
		var waitErr error
		go func() {
			waitErr = cmd.Wait()
			close(exited)
		}()
		var once sync.Once
		var stopErr error
		stop := func() error {
			once.Do(func() {
				select {
				case <-exited:
					stopErr = fmt.Errorf("agent %s/%s (pid %d) had exited: %v (log %s)", cfg.Cluster, cfg.Node, pid, waitErr, cfg.LogFile)
					return
				default:
				}
				_ = syscall.Kill(pid, syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(StopTimeout):
					// The leader has not been reaped, so the group id is still ours.
					_ = syscall.Kill(-pid, syscall.SIGKILL)
					<-exited
					stopErr = fmt.Errorf("agent %s/%s (pid %d) ignored SIGTERM for %s; killed", cfg.Cluster, cfg.Node, pid, StopTimeout)
					return
				}
				var ee *exec.ExitError
				if waitErr != nil && !(errors.As(waitErr, &ee) && signalled(ee, syscall.SIGTERM)) {
					stopErr = fmt.Errorf("agent %s/%s (pid %d): %v (log %s)", cfg.Cluster, cfg.Node, pid, waitErr, cfg.LogFile)
				}
			})
			return stopErr
		}
		return stop, nil
	}
}

// AgentCommand is the `nodenet-agent serve` command for one lab host: the listener as fd 3
// (systemd socket-activation style), output appended to cfg.LogFile, its own process group.
// closeFiles closes the parent's copies of the listener and log files once the child started.
func AgentCommand(binary string, cfg AgentConfig) (cmd *exec.Cmd, closeFiles func(), err error) {
	tl, ok := cfg.Listener.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, nil, fmt.Errorf("listener %T has no File method", cfg.Listener)
	}
	lf, err := tl.File()
	if err != nil {
		return nil, nil, err
	}
	logf, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		lf.Close()
		return nil, nil, err
	}
	fmt.Fprintf(logf, "=== %s lab: starting agent %s/%s on %s\n", time.Now().Format(time.RFC3339Nano), cfg.Cluster, cfg.Node, cfg.Listener.Addr())
	// The agent runs inside the host's namespace, as on a real node (its BGP sessions open
	// there); its gRPC listener, made in the root namespace, is handed over as fd 3.
	cmd = exec.Command("ip", "netns", "exec", filepath.Base(cfg.NetnsPath), binary, "serve",
		"--cluster", cfg.Cluster,
		"--node", cfg.Node,
		"--netns", cfg.NetnsPath,
		"--listen-fd", "3",
		"--tls-cert", cfg.CertFile,
		"--tls-key", cfg.KeyFile,
		"--client-ca", cfg.ClientCAFile,
		"--state-dir", cfg.StateDir,
		"--boot-id-file", cfg.BootIDFile,
	)
	if cfg.CNIConfDir != "" {
		cmd.Args = append(cmd.Args, "--cni-conf-dir", cfg.CNIConfDir)
	}
	if cfg.CNIDataDir != "" {
		cmd.Args = append(cmd.Args, "--cni-ipam-data-dir", cfg.CNIDataDir)
	}
	if lvl := os.Getenv("NODENET_LAB_LOG_LEVEL"); lvl != "" {
		cmd.Args = append(cmd.Args, "--log-level", lvl)
	}
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, func() { lf.Close(); logf.Close() }, nil
}

func signalled(ee *exec.ExitError, sig syscall.Signal) bool {
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// ensure *net.TCPListener satisfies the File interface used above.
var _ interface{ File() (*os.File, error) } = (*net.TCPListener)(nil)
