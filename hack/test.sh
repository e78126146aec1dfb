#!/usr/bin/env bash
# make test: the unit tests, the integration tests against a real
# kube-apiserver and etcd, and the tests against a real registry and
# containerd. It first installs what they need and is missing: the host
# packages of hack/deps.sh (as root), and the test-bed binaries of
# hack/testbin.sh (built once, with its progress shown). It ends with the
# tests that were skipped, each with its reason.
#
#   hack/test.sh [go test flags]       (make test GO_TEST_FLAGS=...)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

log() { echo "test: $*" >&2; }

rc=0
bash hack/deps.sh test >/dev/null || rc=$?
case ${rc} in
  0) ;;
  2) log "the tests that need those packages are skipped; the summary at the end names them" ;;
  *) log "FAILED: installing the packages the tests need"; exit 1 ;;
esac

KUBE_FLEDGED_TESTBIN="$(bash hack/testbin.sh)"
export KUBE_FLEDGED_TESTBIN

# The report is built first, so that its build cannot mix with the tests'.
mkdir -p _output/bin
go build -o _output/bin/testreport ./hack/testreport
log "running go test ./... $*"
# The integration package runs for minutes on two cores (5,000-node
# caches): past go test's default 10 minutes when the machine is busy.
go test -json -timeout 30m "$@" ./... | _output/bin/testreport
