package dataplane

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ProbedKinds are the link kinds ProbeKernelFeatures reports, in probe order.
var ProbedKinds = []string{"vxlan", "macvlan", "bridge", "veth", "ipip", "gre", "geneve", "ipvlan", "dummy", "vrf", "wireguard"}

// ProbeKernelFeatures finds which link kinds the kernel supports by creating one of each in
// a scratch network namespace, which vanishes with everything in it when the probe ends.
// The current namespace is never touched.
func ProbeKernelFeatures() (features map[string]bool, kernelRelease string, err error) {
	probeOnce.Do(func() { probed.features, probed.release, probed.err = probeKernelFeatures() })
	out := make(map[string]bool, len(probed.features))
	for k, v := range probed.features {
		out[k] = v
	}
	return out, probed.release, probed.err
}

// The kernel does not change under a running process: probe once (many in-process agents
// share the result in tests and benchmarks).
var (
	probeOnce sync.Once
	probed    struct {
		features map[string]bool
		release  string
		err      error
	}
)

func probeKernelFeatures() (features map[string]bool, kernelRelease string, err error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, "", fmt.Errorf("uname: %w", err)
	}
	kernelRelease = unix.ByteSliceToString(uts.Release[:])

	type result struct {
		features map[string]bool
		err      error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := probeInScratchNetns()
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, kernelRelease, probeError(r.err)
	}
	return r.features, kernelRelease, nil
}

// probeError names the usual cause: an agent confined to CAP_NET_ADMIN (as a systemd unit
// would naturally do) may not create a network namespace, and without the probe the
// provider's plan-time feature checks cannot work.
func probeError(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("probing kernel features in a scratch network namespace failed (%w): "+
			"the agent needs CAP_SYS_ADMIN besides CAP_NET_ADMIN", err)
	}
	return fmt.Errorf("probing kernel features in a scratch network namespace failed: %w", err)
}

// probeInScratchNetns runs on a goroutine of its own whose OS thread it locks while the
// thread is in the scratch namespace. Once the thread is back in the original namespace it is
// unlocked; only when that return fails is it left locked, so the runtime destroys it rather
// than reuse it in the wrong namespace. (Destroying threads needlessly is harmful too: a
// child process started with Pdeathsig from that thread, as terraform-exec does, is killed.)
func probeInScratchNetns() (map[string]bool, error) {
	runtime.LockOSThread()

	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	scratch, err := netns.New() // also moves this thread into it
	if err != nil {
		// unshare's error as is: probeError recognises EPERM, and the prefix says the rest.
		return nil, err
	}
	defer scratch.Close()
	h, herr := netlink.NewHandleAt(scratch)
	if err := netns.Set(orig); err != nil {
		if herr == nil {
			h.Close()
		}
		return nil, fmt.Errorf("return to the original network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	if herr != nil {
		return nil, fmt.Errorf("netlink handle in the scratch namespace: %w", herr)
	}
	defer h.Close()
	_ = h.SetSocketTimeout(socketTimeout)

	features := make(map[string]bool, len(ProbedKinds))
	try := func(l netlink.Link) bool { return h.LinkAdd(l) == nil }
	attrs := func(name string) netlink.LinkAttrs { return netlink.LinkAttrs{Name: name} }

	features["vxlan"] = try(&netlink.Vxlan{LinkAttrs: attrs("p-vxlan"), VxlanId: 42, Port: 4789})
	features["veth"] = try(&netlink.Veth{LinkAttrs: attrs("p-veth0"), PeerName: "p-veth1"})
	parent := 0
	if features["veth"] {
		if l, err := h.LinkByName("p-veth0"); err == nil {
			parent = l.Attrs().Index
		}
	}
	if parent != 0 {
		a := attrs("p-macvlan")
		a.ParentIndex = parent
		features["macvlan"] = try(&netlink.Macvlan{LinkAttrs: a, Mode: netlink.MACVLAN_MODE_BRIDGE})
		a = attrs("p-ipvlan")
		a.ParentIndex = parent
		features["ipvlan"] = try(&netlink.IPVlan{LinkAttrs: a, Mode: netlink.IPVLAN_MODE_L2})
	} else {
		features["macvlan"], features["ipvlan"] = false, false
	}
	features["bridge"] = try(&netlink.Bridge{LinkAttrs: attrs("p-bridge")})
	features["ipip"] = try(&netlink.Iptun{LinkAttrs: attrs("p-ipip"), Local: net.IPv4(192, 0, 2, 1), Remote: net.IPv4(192, 0, 2, 2)})
	features["gre"] = try(&netlink.Gretun{LinkAttrs: attrs("p-gre"), Local: net.IPv4(192, 0, 2, 1), Remote: net.IPv4(192, 0, 2, 3)})
	features["geneve"] = try(&netlink.Geneve{LinkAttrs: attrs("p-geneve"), ID: 42, Remote: net.IPv4(192, 0, 2, 4)})
	features["dummy"] = try(&netlink.Dummy{LinkAttrs: attrs("p-dummy")})
	features["vrf"] = try(&netlink.Vrf{LinkAttrs: attrs("p-vrf"), Table: 4242})
	features["wireguard"] = try(&netlink.Wireguard{LinkAttrs: attrs("p-wg")})
	return features, nil
}

// SameNetns reports whether the network namespace at path is this process's own.
func SameNetns(path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &a); err != nil {
		return false, err
	}
	if err := unix.Stat(path, &b); err != nil {
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
