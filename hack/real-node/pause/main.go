// Command pause is the real node's pod sandbox ("pause") process: it holds
// the pod's namespaces, reaps orphaned children, and exits on SIGINT or
// SIGTERM. hack/real-node-up.sh builds it into the sandbox image, since the
// local node cannot reach a public registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
