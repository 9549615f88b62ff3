package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind-mounted (as by `ip netns add`).
const NetnsDir = "/run/netns"

var (
	netnsDirOnce sync.Once
	netnsDirErr  error
)

// prepareNetnsDir makes /run/netns a shared mount point, exactly as iproute2 does before
// every `ip netns add`, so that namespaces made here and by `ip` live on the same mount and
// a later `ip netns add` cannot hide (and so leak) ours. This touches mounts only, never
// the root network namespace.
func prepareNetnsDir() error {
	netnsDirOnce.Do(func() {
		if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
			netnsDirErr = err
			return
		}
		bound := false
		for {
			err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
			if err == nil {
				return
			}
			if !errors.Is(err, unix.EINVAL) || bound {
				netnsDirErr = fmt.Errorf("make %s shared: %w", NetnsDir, err)
				return
			}
			if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				netnsDirErr = fmt.Errorf("bind %s: %w", NetnsDir, err)
				return
			}
			bound = true
		}
	})
	return netnsDirErr
}

func nsPath(name string) string { return filepath.Join(NetnsDir, name) }

// onLockedThread runs fn on a fresh OS thread. When fn reports that the thread's namespace
// could not be restored (keep == false), the thread is left locked so that the Go runtime
// destroys it instead of reusing it in the wrong namespace.
func onLockedThread(fn func() (keep bool, err error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		keep, err := fn()
		if keep {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// createNamedNS creates a network namespace bind-mounted at /run/netns/<name> without
// entering it from the calling goroutine. It fails if the name exists.
func createNamedNS(name string) error {
	if err := prepareNetnsDir(); err != nil {
		return err
	}
	path := nsPath(name)
	return onLockedThread(func() (bool, error) {
		orig, err := netns.Get()
		if err != nil {
			return true, err
		}
		defer orig.Close()
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return true, fmt.Errorf("create netns %s: %w", name, err)
		}
		f.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			os.Remove(path)
			return true, fmt.Errorf("unshare netns %s: %w", name, err)
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		merr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if merr != nil {
			os.Remove(path)
			merr = fmt.Errorf("bind-mount netns %s: %w", name, merr)
		}
		if err := netns.Set(orig); err != nil {
			return false, errors.Join(merr, fmt.Errorf("restore netns: %w", err))
		}
		return true, merr
	})
}

// deleteNamedNS unmounts and removes /run/netns/<name>; a missing name is not an error.
func deleteNamedNS(name string) error {
	path := nsPath(name)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", name, err)
	}
	return nil
}

// inNS runs fn with the calling OS thread switched into the named namespace.
func inNS(name string, fn func() error) error {
	target, err := netns.GetFromPath(nsPath(name))
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer target.Close()
	return onLockedThread(func() (bool, error) {
		orig, err := netns.Get()
		if err != nil {
			return true, err
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			return true, fmt.Errorf("enter netns %s: %w", name, err)
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			return false, errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
		}
		return true, ferr
	})
}

// setSysctls writes /proc/sys/<key with dots as slashes> inside the namespace.
// /proc/sys/net resolves to the network namespace of the writing thread.
func setSysctls(name string, kv [][2]string) error {
	return inNS(name, func() error {
		for _, e := range kv {
			p := filepath.Join("/proc/sys", filepath.FromSlash(dotsToSlashes(e[0])))
			if err := os.WriteFile(p, []byte(e[1]), 0o644); err != nil {
				return fmt.Errorf("netns %s: sysctl %s=%s: %w", name, e[0], e[1], err)
			}
		}
		return nil
	})
}

func dotsToSlashes(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

// AddNamespace makes a namespace Prefix+name with "lo" up, for a test's own use (a pod made
// by a CNI plugin, say); Down removes it with the lab's others.
func (l *Lab) AddNamespace(name string) (ns string, err error) {
	if !validName(name) {
		return "", fmt.Errorf("lab: bad namespace name %q", name)
	}
	n, err := l.newNS(l.Prefix + name)
	if err != nil {
		return "", err
	}
	n.close()
	return l.Prefix + name, nil
}

// DeleteNamespace deletes a namespace the lab made, before Down; it refuses any other.
func (l *Lab) DeleteNamespace(ns string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.made, ns)
	if i < 0 {
		return fmt.Errorf("lab: namespace %s is not the lab's", ns)
	}
	if err := deleteNamedNS(ns); err != nil {
		return err
	}
	l.made = slices.Delete(l.made, i, i+1)
	return nil
}

// InNamespace runs fn on an OS thread switched into the named namespace; what fn starts
// (a process, a socket) starts there.
func InNamespace(ns string, fn func() error) error { return inNS(ns, fn) }

// RunIn runs `ip netns exec <ns> args...` and returns its combined output; on failure the
// error includes the output.
func RunIn(ns string, args ...string) (string, error) { return runIn(ns, args...) }
