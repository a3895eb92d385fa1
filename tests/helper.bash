# Shared bats helper: load it with `load helper` from tests/*.bats.
#
# Gives each test a private temp dir ($T), the built tools on PATH (FP_BIN,
# set by `make check`), LC_ALL=C, and throwaway services on free loopback
# ports: start_redis, start_broker.  Every process started through bg_start
# is stopped by PID in teardown, even when the test failed.

export LC_ALL=C
TESTS_DIR="$(cd "$(dirname "${BATS_TEST_FILENAME}")" && pwd)"
REPO_DIR="$(cd "$TESTS_DIR/.." && pwd)"
FP_BIN="${FP_BIN:-$REPO_DIR/build/bin}"
export PATH="$FP_BIN:$PATH"
unset FP_REDIS FP_BROKERS FP_PIPELINE FP_SHARD FP_SHARDS FP_MAX_FRAME FP_STATS_DIR

setup() {
	T="$(mktemp -d "${BATS_TMPDIR:-/tmp}/fp-test.XXXXXX")"
	FP_PIDS=()
	if declare -F local_setup >/dev/null; then local_setup; fi
}

teardown() {
	if declare -F local_teardown >/dev/null; then local_teardown; fi
	stop_all
	rm -rf "$T"
}

# bg_start NAME CMD...: run CMD in the background, output to $T/NAME.out and
# $T/NAME.err; its PID is remembered (and returned in $BG_PID) for teardown.
bg_start() {
	local name=$1; shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" &
	BG_PID=$!
	FP_PIDS+=("$BG_PID")
}

# stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL.
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

stop_all() {
	local i
	for ((i = ${#FP_PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${FP_PIDS[$i]}"
	done
	FP_PIDS=()
}

# free_port: print a TCP port on 127.0.0.1 that is free right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for CMD...: retry CMD every 0.1 s for up to 10 s.
wait_for() {
	local i
	for i in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "timed out waiting for: $*" >&2
	return 1
}

# start_redis [EXTRA redis-server ARGS...]: a private redis-server on a free
# loopback port, no persistence unless asked.  Sets REDIS_PORT, REDIS_PID,
# REDIS_URL and exports FP_REDIS.
start_redis() {
	REDIS_PORT=$(free_port)
	mkdir -p "$T/redis"
	bg_start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
		--save '' --appendonly no --dir "$T/redis" --daemonize no "$@"
	REDIS_PID=$BG_PID
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
	export FP_REDIS="$REDIS_URL"
	wait_for redis-cli -p "$REDIS_PORT" ping
}

rcli() {
	redis-cli -p "$REDIS_PORT" "$@"
}

# start_broker [fp-broker ARGS...]: a private fp-broker (Kafka mock
# cluster).  Sets BROKER (bootstrap address), BROKER_PID, exports
# FP_BROKERS.  Fault injection: broker_ctl 'LINE' writes to its control
# channel (see fp-broker(1)).
start_broker() {
	rm -f "$T/broker.addr"
	mkfifo "$T/broker.ctl" 2>/dev/null || true
	bg_start broker fp-broker --bootstrap-file "$T/broker.addr" --control "$T/broker.ctl" "$@"
	BROKER_PID=$BG_PID
	wait_for test -s "$T/broker.addr"
	BROKER=$(cat "$T/broker.addr")
	export FP_BROKERS="$BROKER"
}

broker_ctl() {
	printf '%s\n' "$*" >"$T/broker.ctl"
}

# jsonl_to_frames FILE: fixture JSON lines to frames on stdout.
frames_of() {
	fp-cat -r "$@"
}
