# The end-to-end harness of issue 8, shared by tests/e2e.bats and
# scripts/crash-test.sh (both load tests/helper.bash first).
#
# A generator produces keyed events (tests/fixtures/e2e/gen.py) to the topic
# "ev" (4 partitions) of a private fp-broker, while the whole pipeline
#
#   fp-consume | fp-import | fp-keyby -n 2 -- 'fp-merge | fp-kvwrite'
#
# runs in its own session (setsid), so that every process of it, the shards
# included (fp-keyby puts each in its own process group), can be listed and
# killed by PID.  The pipeline is restarted as a whole; no flock(1): a shard
# of an earlier run that commits late (a zombie) is fenced by fp-kvwrite's
# commit check (featpipe(7) GUARANTEES; tests/e2e.bats "zombie" tests).  At the end the oracle (oracle.py, independent of
# featpipe) recounts the features from the topic and compare.py checks every
# e2e:* hash in Redis.

E2E_FX="$TESTS_DIR/fixtures/e2e"
E2E_PY=${E2E_PYTHON:-/usr/bin/python3}   # has the redis module
E2E_SHARDS=${E2E_SHARDS:-2}
E2E_MERGE_OPTS=${E2E_MERGE_OPTS:-}
E2E_KVW_OPTS=${E2E_KVW_OPTS:-}
# how long a pipeline may take to end by itself after a crash (it drains
# what it holds: slow with a tiny fp-merge --max-keys)
E2E_UNWIND_S=${E2E_UNWIND_S:-15}
E2E_RUNS=0
E2E_CRASHES=0
E2E_PID=
E2E_SID=
E2E_SESSIONS=()
declare -gA E2E_KILLED=()

# e2e_say TEXT: progress for a person (bats: fd 3; the script: stdout).
e2e_say() {
	if [[ -n ${BATS_TEST_FILENAME:-} && -e /dev/fd/3 ]]; then
		echo "# $*" >&3
	else
		echo "$*"
	fi
}

# e2e_redis_start MODE: redis-server on $E2E_REDIS_PORT (chosen once, so a
# restart gets the same address), MODE none (no persistence) or aof
# (appendonly, fsync everysec), data in $T/redis.
e2e_redis_start() {
	local mode=$1 persist=(--save '' --appendonly no)
	[[ $mode == aof ]] && persist=(--save '' --appendonly yes --appendfsync everysec)
	: "${E2E_REDIS_PORT:=$(free_port)}"
	mkdir -p "$T/redis"
	bg_start "redis-${#FP_PIDS[@]}" redis-server --port "$E2E_REDIS_PORT" --bind 127.0.0.1 \
		--dir "$T/redis" --daemonize no "${persist[@]}"
	REDIS_PID=$BG_PID
	REDIS_PORT=$E2E_REDIS_PORT
	export FP_REDIS="redis://127.0.0.1:$E2E_REDIS_PORT/0"
	wait_for redis-cli -p "$E2E_REDIS_PORT" ping
	# wait until the AOF is loaded: PING answers LOADING errors as errors
	wait_for sh -c "redis-cli -p $E2E_REDIS_PORT ping | grep -qx PONG"
}

# e2e_services [REDIS_MODE]: broker with topic ev:4, Redis, pipeline name.
e2e_services() {
	start_broker -q --topic ev:4
	e2e_redis_start "${1:-none}"
	export FP_PIPELINE=e2e
	export E2E_FX
}

# e2e_produce USERS EVENTS RATE [SEED]: produce in the background, in a
# session of its own (events also kept in $T/events.jsonl); $E2E_PRODUCER
# is its PID.
e2e_produce() {
	bg_start producer setsid bash -c 'set -o pipefail; "$0" "$1/gen.py" "$2" "$3" "$4" "$5" |
		tee "$6/events.jsonl" | fp-cat -r | fp-produce -t ev -k user --value json' \
		"$E2E_PY" "$E2E_FX" "$1" "$2" "$3" "${4:-1}" "$T"
	E2E_PRODUCER=$BG_PID
	E2E_SESSIONS+=("$BG_PID") # so that teardown stops fp-produce too
}

# e2e_wait_producer: wait for the producer to finish; fail if it failed.
e2e_wait_producer() {
	local rc=0
	wait "$E2E_PRODUCER" || rc=$?
	if ((rc != 0)); then
		e2e_say "producer failed ($rc):"; cat "$T/producer.err" >&2
		return 1
	fi
}

# e2e_start [CONSUME-FLAGS...]: start the pipeline in a new session (its
# leader is the shell running $T/pipeline.sh).  Output in $T/run-N.{out,err}.
e2e_start() {
	E2E_RUNS=$((E2E_RUNS + 1))
	local n=$E2E_RUNS
	e2e_script "$@"
	setsid bash "$T/pipeline.sh" >"$T/run-$n.out" 2>"$T/run-$n.err" &
	E2E_PID=$!
	E2E_SID=$E2E_PID
	E2E_SESSIONS+=("$E2E_SID")
	# setsid execs in place (not a process group leader): wait until it has
	local i sid
	for i in $(seq 100); do
		sid=$(ps -o sid= -p "$E2E_PID" | tr -d ' ')
		[[ -z $sid || $sid == "$E2E_PID" ]] && return 0
		sleep 0.01
	done
	echo "setsid did not make $E2E_PID a session leader" >&2
	return 1
}

# e2e_script [CONSUME-FLAGS...]: write the pipeline to $T/pipeline.sh.
e2e_script() {
	cat >"$T/pipeline.sh" <<-EOF
		set -o pipefail
		fp-consume --store - -t ev -o beginning --barrier-ms 200 $* |
		  fp-import -d "\$E2E_FX/e2e.fpd" |
		  fp-keyby -k user -n $E2E_SHARDS -- "fp-merge -v -f \$E2E_FX/e2e.fp $E2E_MERGE_OPTS | fp-kvwrite -v --flush-ms 200 $E2E_KVW_OPTS"
	EOF
}

# e2e_pids [SID]: the PIDs of every live process of a session.
e2e_pids() {
	ps -o pid=,stat= -s "${1:-$E2E_SID}" 2>/dev/null | awk '$2 !~ /^Z/ {print $1}'
}

# e2e_stages: "name pid" per stage of the running pipeline: fp-consume,
# fp-import, fp-keyby, and per shard sh-S, fp-merge-S, fp-kvwrite-S.
e2e_stages() {
	local pid comm shard
	ps -o pid=,comm= -s "$E2E_SID" 2>/dev/null | while read -r pid comm; do
		case $comm in
		fp-merge | fp-kvwrite | sh)
			shard=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^FP_SHARD=//p')
			[[ -n $shard ]] && echo "$comm-$shard $pid"
			;;
		fp-*) echo "$comm $pid" ;;
		esac
	done
}

# e2e_stage_pid NAME: the PID of one stage (empty if not running).
e2e_stage_pid() {
	e2e_stages | awk -v n="$1" '$1 == n {print $2}'
}

# e2e_reap SECONDS: give the session SECONDS to end on its own, then
# SIGKILL whatever is left; returns when no process of it is alive.
# E2E_STATUS is the leader's exit status; E2E_UNWOUND 1 if it ended alone.
e2e_reap() {
	local i end=$((SECONDS + $1)) pids
	E2E_UNWOUND=1
	while [[ -n $(e2e_pids) ]]; do
		if ((SECONDS >= end)); then
			# the leader (the shell) last: it then exits by itself with 128+9
			E2E_UNWOUND=0
			pids=$(e2e_pids | grep -vx "$E2E_PID" || true)
			[[ -n $pids || $SECONDS -ge $((end + 3)) ]] || pids=$E2E_PID
			for i in $pids; do kill -KILL "$i" 2>/dev/null || true; done
		fi
		sleep 0.1
	done
	E2E_STATUS=0
	[[ -z $E2E_PID ]] || { wait "$E2E_PID"; } 2>/dev/null || E2E_STATUS=$?
	E2E_PID=
}

# e2e_supervise [SECONDS]: what a supervisor does: restart the pipeline
# whenever it has ended (every process of it gone), for SECONDS or, without,
# until the producer has finished.  The pipeline is left running.
e2e_supervise() {
	local end=$((SECONDS + ${1:-100000}))
	while ((SECONDS < end)); do
		[[ -z ${1:-} ]] && ! kill -0 "$E2E_PRODUCER" 2>/dev/null && break
		if [[ -z $E2E_PID || -z $(e2e_pids) ]]; then
			if [[ -n $E2E_PID ]]; then
				e2e_reap 0
				echo "run $E2E_RUNS: ended with status $E2E_STATUS; restarted" >>"$T/crash.log"
			fi
			e2e_start
		fi
		sleep 0.2
	done
}

# e2e_fails_alone [PATTERN]: the running pipeline must end by itself within
# 30 s, with a non-zero status (and PATTERN in its standard error).
e2e_fails_alone() {
	local n=$E2E_RUNS
	e2e_reap 30
	[[ $E2E_UNWOUND == 1 && $E2E_STATUS != 0 ]] ||
		{ echo "run $n: ended alone $E2E_UNWOUND, status $E2E_STATUS" >&2; return 1; }
	[[ -z ${1:-} ]] || grep -- "$1" "$T/run-$n.err"
}

# e2e_recover: restart the pipeline whenever it ends until the producer is
# done, stop it, run it to the end (-e) and check it against the oracle.
e2e_recover() {
	e2e_supervise
	e2e_stop
	e2e_finish
	e2e_check
}

# e2e_stop: kill -9 the running pipeline, every process of it.
e2e_stop() {
	e2e_reap 0
}

# e2e_kill_all: teardown: SIGKILL every process of every session started.
e2e_kill_all() {
	local s p
	for s in "${E2E_SESSIONS[@]}"; do
		for p in $(e2e_pids "$s"); do kill -KILL "$p" 2>/dev/null || true; done
	done
}

# e2e_crash [VICTIM [MODE]]: kill -9 one stage (random when not named) of the
# running pipeline, then restart-as-a-whole semantics: half of the time the
# rest is killed at once (as supervisord's killasgroup would), otherwise it
# is given $E2E_UNWIND_S s to fail as a whole on its own (pipefail, fp-keyby stopping
# its shards) before the rest is killed.
e2e_crash() {
	local victim=${1:-} stages pid
	mapfile -t stages < <(e2e_stages)
	if ((${#stages[@]} == 0)); then
		e2e_say "run $E2E_RUNS: no stage left to kill"; e2e_reap 0; return 0
	fi
	if [[ -z $victim ]]; then
		victim=${stages[RANDOM % ${#stages[@]}]%% *}
	fi
	pid=$(printf '%s\n' "${stages[@]}" | awk -v n="$victim" '$1 == n {print $2}')
	[[ -n $pid ]] || { e2e_say "run $E2E_RUNS: no stage $victim"; return 1; }
	kill -KILL "$pid"
	E2E_CRASHES=$((E2E_CRASHES + 1))
	E2E_KILLED[$victim]=$((${E2E_KILLED[$victim]:-0} + 1))
	local mode=${2:-}
	[[ -n $mode ]] || { ((RANDOM % 2)) && mode=at-once || mode=unwind; }
	if [[ $mode == at-once ]]; then
		e2e_reap 0
	else
		e2e_reap "$E2E_UNWIND_S"
	fi
	# a stored position O:I: this crash left a shard inside an exploded record
	local mid
	mid=$(redis-cli -p "$REDIS_PORT" hvals fp:e2e:offsets 2>/dev/null | grep -c : || true)
	((mid == 0)) || E2E_MIDREC=$((${E2E_MIDREC:-0} + 1))
	echo "run $E2E_RUNS: killed $victim ($mode), status $E2E_STATUS, ended alone $E2E_UNWOUND, positions inside a record $mid" >>"$T/crash.log"
	if [[ $mode == unwind && $E2E_UNWOUND == 0 ]]; then
		e2e_say "run $E2E_RUNS: the pipeline did not end within $E2E_UNWIND_S s after $victim was killed"
		E2E_HUNG=$((${E2E_HUNG:-0} + 1))
	fi
}

# e2e_crash_loop N MIN_MS MAX_MS: N times: start, wait a random time, crash.
e2e_crash_loop() {
	local i ms
	for ((i = 0; i < $1; i++)); do
		e2e_start
		ms=$(($2 + RANDOM % ($3 - $2 + 1)))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		e2e_crash
	done
}

# e2e_finish [TRIES [CONSUME-FLAGS...]]: run the pipeline with -e until it
# exits 0 (a restart loop, as a supervisor would), at most TRIES times
# (default 5).
e2e_finish() {
	local i tries=${1:-5}
	shift || true
	for ((i = 0; i < tries; i++)); do
		e2e_start -e "$@"
		e2e_reap 300
		((E2E_STATUS == 0)) && return 0
		e2e_say "run $E2E_RUNS (-e) exited $E2E_STATUS; restarting"
		sed 's/^/  /' "$T/run-$E2E_RUNS.err" | grep -v ' records, \| messages, ' | head -5 >&2
		sleep 0.5
	done
	return 1
}

# e2e_group_committed GROUP: "partition offset" per partition of ev, as
# committed to the consumer group.
e2e_group_committed() {
	"$E2E_PY" - "$BROKER" "$1" <<-'EOF'
		import sys
		from confluent_kafka import Consumer, TopicPartition
		c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2]})
		for tp in c.committed([TopicPartition("ev", p) for p in range(4)], timeout=10):
		    print(tp.partition, tp.offset)
		c.close()
	EOF
}

# e2e_check: the oracle against Redis, and every stored offset against the
# end of its partition.  Prints the summary; fails on any mismatch.
e2e_check() {
	kcat -C -b "$BROKER" -t ev -e -q -f '%p %s\n' >"$T/topic.txt"
	cut -d' ' -f2- "$T/topic.txt" >"$T/topic.jsonl"
	# the topic holds exactly the generated events (no loss, no duplicate)
	if ! diff <(sort "$T/events.jsonl") <(sort "$T/topic.jsonl") >/dev/null; then
		e2e_say "the topic does not hold exactly the generated events"
		return 1
	fi
	"$E2E_PY" "$E2E_FX/oracle.py" "$T/topic.jsonl" >"$T/expected.json"
	local out rc=0
	out=$("$E2E_PY" "$E2E_FX/compare.py" "$T/expected.json" "$REDIS_PORT") || rc=$?
	# offsets: every partition of every shard at the partition's end
	local want have
	want=$(cut -d' ' -f1 "$T/topic.txt" | awk -v n="$E2E_SHARDS" '{c[$1]++}
		END {for (p = 0; p < 4; p++) for (s = 0; s < n; s++) printf "ev/%d/%d/%d %d\n", p, s, n, c[p] + 0}' | sort)
	have=$(redis-cli -p "$REDIS_PORT" hgetall fp:e2e:offsets | paste - - | tr '\t' ' ' | sort)
	if [[ $want != "$have" ]]; then
		e2e_say "stored offsets differ from the partition ends:"
		diff <(echo "$want") <(echo "$have") >&2 || true
		rc=1
	fi
	local killed="" k
	for k in "${!E2E_KILLED[@]}"; do killed+=" $k=${E2E_KILLED[$k]}"; done
	e2e_say "events $(wc -l <"$T/events.jsonl"), runs $E2E_RUNS, crashes injected $E2E_CRASHES${killed:+ (}${killed# }${killed:+)}"
	# a stage that failed a sanitizer check (make bats SAN=1) is a failure
	# even when the restarts hid it
	if cat "$T"/run-*.err "$T"/producer.err 2>/dev/null | grep 'Sanitizer\|runtime error:'; then
		e2e_say "sanitizer reports in the runs' standard error"
		rc=1
	fi
	[[ -z ${E2E_MIDREC:-} ]] || e2e_say "crashes that left a shard's stored position inside an exploded record: $E2E_MIDREC"
	e2e_say "$out"
	return $rc
}

# e2e_pending_writers: PIDs of the fp-kvwrite processes that have sent Redis
# a command it has not read yet (bytes queued on Redis's side of their
# connection: with Redis stopped, a commit sent and unanswered).
e2e_pending_writers() {
	local p
	for p in $(ss -Htn state established "( sport = :$REDIS_PORT )" |
		awk '$1 > 0 {n = split($4, a, ":"); print a[n]}'); do
		ss -Htnp state established "( sport = :$p and dport = :$REDIS_PORT )" |
			grep -o '"fp-kvwrite",pid=[0-9]*' | sed 's/.*pid=//'
	done | sort -u
}

# e2e_close_stdout PID: close file descriptor 1 of a running process (gdb).
e2e_close_stdout() {
	gdb -p "$1" -batch -nx -ex 'call (int)close(1)' -ex detach >"$T/gdb.out" 2>&1
}
