# shellcheck shell=bash
# Process helpers shared by the scripts that start the local cluster and the
# real node. The caller sets SCRIPT (its name, for messages), PIDS and LOGS
# (folders for PID files and logs) and DOWN (the script that stops what was
# started), then sources this file.

log() { echo "${SCRIPT}: $*" >&2; }

is_running() { [[ -f "${PIDS}/$1.pid" ]] && kill -0 "$(cat "${PIDS}/$1.pid")" 2>/dev/null; }

# fail COMPONENT MESSAGE...: says what failed, with the end of the
# component's log, stops what was started, and exits 1.
fail() {
  local component="$1"; shift
  log "FAILED: $*"
  if [[ -f "${LOGS}/${component}.log" ]]; then
    echo "--- last 30 lines of ${LOGS}/${component}.log ---" >&2
    tail -n 30 "${LOGS}/${component}.log" >&2
  fi
  log "stopping what was started"
  LOCAL_DIR="${LOCAL_DIR}" bash "${DOWN}" >&2 || true
  exit 1
}

# wait_until COMPONENT SECONDS DESCRIPTION COMMAND...: polls COMMAND until it
# succeeds; fails with the component's log if it exits or time runs out.
wait_until() {
  local component="$1" seconds="$2" what="$3"; shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    is_running "${component}" || fail "${component}" "${component} exited while waiting for ${what}"
    ((SECONDS < deadline)) || fail "${component}" "timed out after ${seconds}s waiting for ${what}"
    sleep 0.2
  done
}

# start NAME COMMAND...: runs COMMAND in its own session, its output in
# LOGS/NAME.log and its PID in PIDS/NAME.pid.
start() {
  local name="$1"; shift
  setsid "$@" >"${LOGS}/${name}.log" 2>&1 </dev/null &
  echo $! >"${PIDS}/${name}.pid"
}

# stop_pid NAME [SECONDS]: stops the process recorded in PIDS/NAME.pid with
# SIGTERM, then SIGKILL after SECONDS (default 10), and removes the PID file.
# It succeeds when there was a running process to stop.
stop_pid() {
  local name="$1" seconds="${2:-10}" f="${PIDS}/$1.pid" pid
  [[ -f "${f}" ]] || return 1
  pid="$(cat "${f}")"
  rm -f "${f}"
  kill -0 "${pid}" 2>/dev/null || return 1
  kill -TERM "${pid}" 2>/dev/null
  for _ in $(seq 1 $((seconds * 10))); do kill -0 "${pid}" 2>/dev/null || return 0; sleep 0.1; done
  log "${name} (pid ${pid}) did not stop on SIGTERM; killing it"
  kill -KILL "${pid}" 2>/dev/null
  return 0
}
