package cri

import (
	"strings"
	"testing"
)

func TestSocketForRuntime(t *testing.T) {
	cases := map[string]string{
		"containerd://1.6.20": "/run/containerd/containerd.sock",
		"containerd://2.1.0":  "/run/containerd/containerd.sock",
		"cri-o://1.30.2":      "/var/run/crio/crio.sock",
		// k3s's and RKE2's own containerd.
		"containerd://1.7.23-k3s2": "/run/k3s/containerd/containerd.sock",
		"containerd://2.0.4-k3s2":  "/run/k3s/containerd/containerd.sock",
	}
	for version, want := range cases {
		got, err := SocketForRuntime(version)
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", version, got, err, want)
		}
	}
	for _, version := range []string{"docker://24.0.7", "kwok-v0.8.0", ""} {
		_, err := SocketForRuntime(version)
		if err == nil || !strings.Contains(err.Error(), "--cri-socket-path") {
			t.Errorf("%q: error %v; want one pointing at --cri-socket-path", version, err)
		}
		if version != "" && !strings.Contains(err.Error(), version) {
			t.Errorf("%q: error %v does not name the runtime", version, err)
		}
	}
}
