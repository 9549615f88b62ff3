package bgp

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// shutdownSessions shuts down this process's TCP sockets whose local or remote port is in
// ports: the speaker's sessions (and its listener). GoBGP's Stop sends a Cease to every
// peer, after which peers drop this node's routes at once; with the sockets shut down first
// the Cease finds them closed, and peers see only the connection end, which graceful
// restart covers: they keep the routes as stale until this node is back.
func shutdownSessions(ports map[uint16]bool) (int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || !isTCPSocket(fd) {
			continue
		}
		if !ports[localPort(fd)] && !ports[remotePort(fd)] {
			continue
		}
		if err := unix.Shutdown(fd, unix.SHUT_RDWR); err == nil {
			n++
		}
	}
	return n, nil
}

func isTCPSocket(fd int) bool {
	target, err := os.Readlink(filepath.Join("/proc/self/fd", strconv.Itoa(fd)))
	if err != nil || !strings.HasPrefix(target, "socket:") {
		return false
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || (dom != unix.AF_INET && dom != unix.AF_INET6) {
		return false
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil && typ == unix.SOCK_STREAM
}

func localPort(fd int) uint16 {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0
	}
	return portOf(sa)
}

func remotePort(fd int) uint16 {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return 0
	}
	return portOf(sa)
}

func portOf(sa unix.Sockaddr) uint16 {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(a.Port)
	case *unix.SockaddrInet6:
		return uint16(a.Port)
	}
	return 0
}
