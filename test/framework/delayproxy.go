package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The kernel here has no netem, so tc cannot add latency to a link: a
// delay proxy in front of a server adds it, holding every chunk of bytes
// for the delay in each direction before passing it on (tc tbf still
// limits the rate). Unlike a long wire, it does not slow TCP's window
// growth; it does make every request wait for a round trip of twice the
// delay, as a registry across a WAN does.

// delayProxyEnv, set to "LISTEN TARGET DELAY", makes a test binary that
// calls MaybeRunDelayProxy in its TestMain run a delay proxy instead of its
// tests, so that `ip netns exec` can run one inside a network namespace.
const delayProxyEnv = "KUBE_FLEDGED_DELAY_PROXY"

// MaybeRunDelayProxy runs the delay proxy and exits when the environment
// asks this process to be one (StartDelayProxyIn); otherwise it returns.
// Call it first in TestMain.
func MaybeRunDelayProxy() {
	spec := os.Getenv(delayProxyEnv)
	if spec == "" {
		return
	}
	var listen, target string
	var delay time.Duration
	if _, err := fmt.Sscan(spec, &listen, &target, &delay); err != nil {
		fmt.Fprintf(os.Stderr, "delay proxy: %s=%q: %v\n", delayProxyEnv, spec, err)
		os.Exit(2)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "delay proxy: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "delay proxy: %s -> %s, %v each way\n", listen, target, delay)
	err = ServeDelayProxy(context.Background(), l, target, delay)
	fmt.Fprintf(os.Stderr, "delay proxy: %v\n", err)
	os.Exit(1)
}

// ServeDelayProxy accepts connections on l and forwards each to target,
// each direction delayed, until ctx ends or l fails.
func ServeDelayProxy(ctx context.Context, l net.Listener, target string, delay time.Duration) error {
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	for {
		in, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		go func() {
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				return
			}
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); delayedCopy(out, in, delay) }()
			go func() { defer wg.Done(); delayedCopy(in, out, delay) }()
			wg.Wait()
			_ = in.Close()
			_ = out.Close()
		}()
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// delayedCopy copies src to dst, each chunk written delay after it was
// read; at src's end it closes dst's writing half.
func delayedCopy(dst, src net.Conn, delay time.Duration) {
	// Up to 64 MiB in flight: far more than a link's bandwidth-delay
	// product, so the delay, not the buffer, is what limits.
	chunks := make(chan chunk, 2048)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{data: buf[:n], due: time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for c := range chunks {
		if failed {
			continue // drain, so the reader ends
		}
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			failed = true
			_ = src.Close()
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// DelayProxy is a delay proxy running in a network namespace.
type DelayProxy struct {
	proc *process
}

// StartDelayProxyIn starts this test binary as a delay proxy (see
// MaybeRunDelayProxy) inside the network namespace netns, listening on
// listen and forwarding to target, each direction delayed; logs go to dir.
func StartDelayProxyIn(ctx context.Context, netns, listen, target string, delay time.Duration, dir string) (*DelayProxy, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	env := []string{fmt.Sprintf("%s=%s %s %s", delayProxyEnv, listen, target, delay)}
	p := &DelayProxy{}
	// ip execs the proxy: the PID is the proxy's.
	if p.proc, err = startProcessEnv("delay-proxy", filepath.Join(dir, "delay-proxy.log"), env, "ip", "netns", "exec", netns, self); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.proc.exited() {
			return nil, fmt.Errorf("delay proxy exited: %v\n%s", p.proc.err, p.proc.LogTail(10))
		}
		if strings.Contains(p.proc.LogTail(5), "delay proxy: "+listen) {
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, errors.New("the delay proxy did not start within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the proxy by PID.
func (p *DelayProxy) Stop() {
	if p != nil {
		p.proc.Stop(5 * time.Second)
	}
}
