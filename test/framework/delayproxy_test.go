package framework

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestDelayProxy: through the proxy, a request and its answer each wait
// the delay, and a large answer arrives whole, not slowed by more than the
// delay.
func TestDelayProxy(t *testing.T) {
	const delay = 40 * time.Millisecond
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB
	server, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	go func() {
		for {
			c, err := server.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1)
				if _, err := io.ReadFull(c, buf); err == nil {
					_, _ = c.Write(payload)
				}
			}()
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ServeDelayProxy(ctx, l, server.Addr().String(), delay) }()

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatal(err)
	}
	rtt := time.Since(start)
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, want the %d sent", len(got), len(payload))
	}
	t.Logf("first byte after %v (delay %v each way), all 4 MiB after %v", rtt, delay, time.Since(start))
	if rtt < 2*delay {
		t.Errorf("the first byte came back after %v, less than twice the delay (%v)", rtt, 2*delay)
	}
}
