//go:build e2e

package e2e

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// socketProxy forwards a unix socket of its own to containerd's: the
// controller's Jobs mount it as the runtime's socket, and a test takes it
// away (connections refused, the file left) and gives it back.
type socketProxy struct {
	path, target string
	mu           sync.Mutex
	ln           *net.UnixListener
	conns        []net.Conn
}

func newSocketProxy(t *testing.T, target string) *socketProxy {
	dir, err := os.MkdirTemp("/run", "kube-fledged-e2e-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	p := &socketProxy{path: filepath.Join(dir, "containerd.sock"), target: target}
	p.up(t)
	t.Cleanup(func() { p.down(); _ = os.RemoveAll(dir) })
	return p
}

// up listens again, where the socket's file was.
func (p *socketProxy) up(t *testing.T) {
	t.Helper()
	_ = os.Remove(p.path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *socketProxy) forward(c net.Conn) {
	up, err := net.Dial("unix", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// down refuses connections from now, and ends those open; the socket's
// file stays, so that a pod mounting it starts, and its runtime calls fail.
func (p *socketProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}
