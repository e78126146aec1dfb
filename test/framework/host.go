package framework

import (
	"fmt"
	"os"
	"testing"
)

// What the tests that need host programs say when they skip. `make test`
// installs those programs (hack/deps.sh lists them) when it runs as root.
const enableHint = "`make test` as root installs it (hack/deps.sh)"

// RequireRegistry skips t, with a one-line reason, when Debian's
// docker-registry is not installed.
func RequireRegistry(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(RegistryBinary); err != nil {
		t.Skipf("needs %s (Debian package docker-registry), which is missing: %s", RegistryBinary, enableHint)
	}
}

func missingBinary(path, pkg string) error {
	return fmt.Errorf("%s missing: install the %s package (`make test` does, as root; see hack/deps.sh)", path, pkg)
}
