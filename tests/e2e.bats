#!/usr/bin/env bats
# Exactly once, end to end (issue 8): crash any stage of
#   fp-consume | fp-import | fp-keyby -n 2 -- 'fp-merge | fp-kvwrite'
# at any moment, restart the pipeline as a whole, and the features in Redis
# still equal what the oracle recounts from the topic.  Summaries (runs,
# crashes per stage, keys checked, mismatches) are printed as TAP comments.
load helper
load e2e

local_teardown() {
	e2e_kill_all
}

# ---- zombie writers: two instances of one shard, no broker, no flock ----

# zrecords FROM TO: the behaviour records of events [FROM, TO) of
# $T/events.jsonl (partition ev/0; baskets exploded as fp-import does, with
# (offset, index) positions), then a barrier at TO, as frames.
zrecords() {
	"$E2E_PY" - "$T/events.jsonl" "$1" "$2" <<-'EOF' | fp-cat -r
		import json, sys
		lines = open(sys.argv[1]).read().split("\n")
		lo, hi = int(sys.argv[2]), int(sys.argv[3])
		for o in range(lo, hi):
		    ev = json.loads(lines[o])
		    if ev["kind"] == "basket":
		        for j, it in enumerate(ev["items"]):
		            r = {k: ev[k] for k in ("user", "kind", "seq", "ts")}
		            r.update(sku=it["sku"], qty=it["qty"])
		            r["@src"] = ["ev", 0, o, j]
		            print(json.dumps(r))
		    else:
		        print(json.dumps(dict(ev, **{"@src": ["ev", 0, o]})))
		print(json.dumps({"@ctl": "barrier", "@epoch": hi, "@pos": [["ev", 0, hi]]}))
	EOF
}

# zshard NAME: one shard instance, fp-merge reading the FIFO $T/NAME.in
# (open it for writing next), its output kept in $T/NAME.mid too, into
# fp-kvwrite; NAME_KV is fp-kvwrite's PID, NAME_MERGE fp-merge's.
zshard() {
	mkfifo "$T/$1.in" "$T/$1.pipe"
	bg_start "$1-merge" sh -c 'exec fp-merge -f "$0/e2e.fp" <"$1.in" | tee "$1.mid" >"$1.pipe"' "$E2E_FX" "$T/$1"
	printf -v "${1}_MERGE" %s "$BG_PID"
	bg_start "$1-kv" fp-kvwrite --flush-ms 0 "$T/$1.pipe"
	printf -v "${1}_KV" %s "$BG_PID"
}

# zoracle TO: Redis holds exactly what one clean run over events [0, TO) gives.
zoracle() {
	head -n "$1" "$T/events.jsonl" >"$T/upto.jsonl"
	"$E2E_PY" "$E2E_FX/oracle.py" "$T/upto.jsonl" >"$T/expected.json"
	"$E2E_PY" "$E2E_FX/compare.py" "$T/expected.json" "$REDIS_PORT"
}

zoffset() {
	[ "$(rcli hget fp:zt:offsets ev/0/0/1)" = "$1" ]
}

# zsetup: Redis, 3000 events of 40 users; instance a (the future zombie) has
# committed events [0, 1000), then its fp-kvwrite is stopped (SIGSTOP) while
# fp-merge gets [1000, 2000) and the end of its input.
zsetup() {
	start_redis
	export FP_PIPELINE=zt
	"$E2E_PY" "$E2E_FX/gen.py" 40 3000 0 7 >"$T/events.jsonl"
	zrecords 0 1000 >"$T/a1" && zrecords 1000 2000 >"$T/a2"
	zshard a
	# its feeder: [1000, 2000) only once fp-kvwrite is stopped; a stopped
	# reader fills the pipes, so the feeder, not the test, waits on them
	bg_start a-feed sh -c 'cd "$0" && { cat a1; while [ ! -e stopped ]; do sleep 0.05; done; cat a2; } >a.in' "$T"
	wait_for zoffset 1000
	kill -STOP "$a_KV"
	touch "$T/stopped"
}

@test "e2e: a zombie shard commits after a new instance read the offsets: the new one is fenced (exit 4), a clean run is exact" {
	zsetup
	# b: the restarted pipeline's shard; its fp-merge has read the offsets
	# (1000) once its origin frame is out
	zshard b
	exec 8>"$T/b.in"
	wait_for test -s "$T/b.mid"
	fp-cat "$T/b.mid" | head -1 | jq -ce '.["@ctl"] == "origin" and .["@pos"] == [["ev", 0, "1000"]]'
	# the zombie wakes up and commits what it holds
	kill -CONT "$a_KV"
	local rc=0
	wait "$a_KV" || rc=$?
	[ "$rc" -eq 0 ]
	zoffset 2000
	# b replays from what it read: 1000 on; its fp-merge loads states that
	# already hold [1000, 2000): without the fence they would count twice
	zrecords 1000 3000 >&8
	exec 8>&-
	rc=0
	wait "$b_KV" || rc=$?
	[ "$rc" -eq 4 ]
	grep -q "another writer changed the stored offsets of shard 0/1 of pipeline 'zt': field 'ev/0/0/1' expected 1000, found 2000; is an old pipeline still running?" "$T/b-kv.err"
	zoffset 2000
	zoracle 2000 # nothing of b was written
	# the next run resumes from what the store holds
	zshard c
	exec 9>"$T/c.in"
	zrecords 0 3000 >&9
	exec 9>&-
	wait "$c_KV"
	zoffset 3000
	zoracle 3000
}

@test "e2e: a zombie shard commits after a new instance committed: the zombie is fenced (exit 4), Redis stays exact" {
	zsetup
	zshard b
	exec 8>"$T/b.in"
	zrecords 1000 3000 >&8
	exec 8>&-
	wait "$b_KV"
	zoffset 3000
	zoracle 3000
	kill -CONT "$a_KV"
	local rc=0
	wait "$a_KV" || rc=$?
	[ "$rc" -eq 4 ]
	grep -q "another writer changed the stored offsets of shard 0/1 of pipeline 'zt': field 'ev/0/0/1' expected 1000, found 3000; is an old pipeline still running?" "$T/a-kv.err"
	zoffset 3000
	zoracle 3000
}

@test "e2e: kill -9 a random stage 10 times while events flow; Redis equals the oracle" {
	RANDOM=${E2E_SEED:-8}
	e2e_services none
	e2e_produce 300 30000 1500
	e2e_crash_loop 10 300 2500
	e2e_wait_producer
	# the last run as a group member: it commits the durable positions
	e2e_finish 5 -G e2e-group -X session.timeout.ms=6000
	e2e_check
	((E2E_CRASHES >= 10))
	# the group's committed offsets show what the store holds: fp-consume
	# --store waits at the end for the last epoch to be committed
	diff -u <(cut -d' ' -f1 "$T/topic.txt" | awk '{c[$1]++} END {for (p = 0; p < 4; p++) print p, c[p] + 0}') \
		<(e2e_group_committed e2e-group | sort)
	[ "${E2E_HUNG:-0}" -eq 0 ]
}

@test "e2e: fp-merge --max-keys 5 (far below 400 keys) under crashes loses no buffered update" {
	RANDOM=${E2E_SEED:-5}
	E2E_MERGE_OPTS="--max-keys 5 --batch 32"
	E2E_UNWIND_S=45 # a slow drain, but less than fp-merge's --commit-wait (60 s)
	e2e_services none
	e2e_produce 400 12000 1500
	e2e_crash_loop 4 500 2000
	# a dead writer must stop its fp-merge, which may be waiting for it to
	# commit before it can evict, at once (not after --commit-wait)
	e2e_start
	sleep 1.5
	e2e_crash fp-kvwrite-0 unwind
	e2e_wait_producer
	e2e_finish
	e2e_check
	# keys were evicted (and reloaded) for real
	grep -h 'evicted=[1-9]' "$T"/run-*.err | grep -q 'loaded=[1-9]'
	[ "${E2E_HUNG:-0}" -eq 0 ]
}

@test "e2e: redis-server killed and restarted empty (no persistence): the pipeline stops and replays" {
	e2e_services none
	e2e_produce 200 12000 2000
	e2e_start
	sleep 2.5
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" || true
	sleep 1
	e2e_redis_start none
	# the pipeline must notice the rollback by itself and fail as a whole
	e2e_fails_alone 'Redis lost data'
	e2e_recover
}

@test "e2e: redis-server killed, its AOF (everysec) losing its tail: the rollback is noticed and replayed" {
	# kill -9 alone loses nothing with appendfsync everysec (written data is
	# in the page cache); a host crash loses up to the last second or so,
	# which is what cutting the AOF's tail at a random byte simulates (Redis
	# loads a truncated AOF and drops a MULTI left open at its end).
	RANDOM=${E2E_SEED:-3}
	e2e_services aof
	e2e_produce 200 12000 2000
	e2e_start
	sleep 3
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" || true
	local aof size
	aof=$(echo "$T"/redis/appendonlydir/*.incr.aof)
	size=$(stat -c %s "$aof")
	truncate -s $((size * (50 + RANDOM % 45) / 100)) "$aof"
	e2e_redis_start aof
	e2e_fails_alone 'Redis lost data'
	e2e_recover
}

@test "e2e: broker down for 10 s while events flow" {
	e2e_services none
	e2e_produce 200 8000 500
	e2e_start
	sleep 2
	broker_ctl 'down 1'
	e2e_supervise 10
	broker_ctl 'up 1'
	e2e_recover
}

@test "e2e: fp-kvwrite killed after sending a commit and before its reply (Redis stopped)" {
	e2e_services none
	e2e_produce 200 10000 2000
	e2e_start
	sleep 2
	local before after w
	before=$(rcli hgetall fp:e2e:offsets | paste -sd' ')
	kill -STOP "$REDIS_PID"
	sleep 1
	w=$(e2e_pending_writers)
	[ -n "$w" ] || { kill -CONT "$REDIS_PID"; echo "no commit in flight" >&2; return 1; }
	kill -KILL $w
	kill -CONT "$REDIS_PID"
	e2e_reap 30
	[ "$E2E_UNWOUND" -eq 1 ]
	after=$(rcli hgetall fp:e2e:offsets | paste -sd' ')
	# The commit landed if Redis read it to its EXEC before it noticed the
	# writer gone (one read), or not at all: the transaction is atomic.
	# Either way the restarted pipeline must end exact.
	if [ "$before" != "$after" ]; then echo "the unanswered commit landed" >&2
	else echo "the unanswered commit did not land" >&2; fi
	e2e_recover
}

@test "e2e: a stage's standard output closed under it (fp-consume, fp-import, fp-merge)" {
	e2e_services none
	e2e_produce 200 12000 2000
	local stage pid
	for stage in fp-consume fp-import fp-merge-1; do
		e2e_start
		sleep 1.5
		pid=$(e2e_stage_pid "$stage")
		[ -n "$pid" ]
		e2e_close_stdout "$pid" || { cat "$T/gdb.out" >&2; return 1; }
		e2e_fails_alone
	done
	e2e_recover
}

# sv CMD...: supervisorctl against the test's supervisord
sv() {
	supervisorctl -c "$T/sv.conf" "$@"
}

# sv_up: wait until the program runs with both shards' writers up.
sv_up() {
	local i
	for i in $(seq 200); do
		[[ $(e2e_stages | grep -c '^fp-kvwrite-') -eq 2 ]] && return 0
		sleep 0.1
	done
	echo "the pipeline did not come up under supervisord" >&2
	return 1
}

@test "e2e: under supervisord with featpipe(7)'s settings, crashes (fp-keyby -9 too) restart it, stop reaches every shard" {
	RANDOM=${E2E_SEED:-11}
	e2e_services none
	e2e_produce 200 12000 1500
	e2e_script
	cat >"$T/sv.conf" <<-EOF
		[unix_http_server]
		file=$T/sv.sock
		[supervisord]
		nodaemon=true
		logfile=$T/supervisord.log
		pidfile=$T/supervisord.pid
		childlogdir=$T
		[rpcinterface:supervisor]
		supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
		[supervisorctl]
		serverurl=unix://$T/sv.sock
		[program:e2e]
		command=bash $T/pipeline.sh
		autostart=true
		autorestart=true
		startsecs=1
		startretries=100000
		stopsignal=TERM
		stopasgroup=true
		killasgroup=true
		stopwaitsecs=30
		redirect_stderr=true
		stdout_logfile=$T/sv-e2e.log
	EOF
	setsid supervisord -c "$T/sv.conf" >"$T/sv.out" 2>&1 &
	local svpid=$! victim pid stages i
	E2E_SID=$svpid
	E2E_SESSIONS+=("$svpid")
	for victim in fp-keyby "" "" fp-kvwrite-1 ""; do
		sv_up
		sleep "1.$((RANDOM % 10))"
		mapfile -t stages < <(e2e_stages)
		[[ -n $victim ]] || victim=${stages[RANDOM % ${#stages[@]}]%% *}
		pid=$(printf '%s\n' "${stages[@]}" | awk -v n="$victim" '$1 == n {print $2}')
		kill -KILL "$pid"
		E2E_CRASHES=$((E2E_CRASHES + 1))
		E2E_KILLED[$victim]=$((${E2E_KILLED[$victim]:-0} + 1))
		# wait for supervisord to see the program exit
		for i in $(seq 300); do
			(($(grep -c 'exited: e2e' "$T/supervisord.log") >= E2E_CRASHES)) && break
			sleep 0.1
		done
	done
	sv_up
	e2e_wait_producer
	sv stop e2e
	# the stop reached every process of the pipeline, the shards included
	sleep 0.5
	[ -z "$(e2e_pids "$svpid" | grep -vx "$svpid")" ]
	E2E_RUNS=$(grep -c 'spawned: .e2e.' "$T/supervisord.log")
	(($(grep -c 'exited: e2e' "$T/supervisord.log") >= 5))
	kill -TERM "$svpid"
	wait "$svpid" || true
	e2e_finish
	e2e_check
}

# big_pos: the stored position of the shard that has user "big", as
# "FIELD POSITION" (the only field whose position is inside a record).
big_pos() {
	rcli hgetall fp:e2e:offsets | paste - - | awk -F'\t' '$2 ~ /:/ {print $1, $2}'
}

@test "e2e: crashes inside an exploded record (one message, 40000 items) resume at its (offset, index)" {
	E2E_KVW_OPTS="--max-batch 1" # an epoch per sync: positions O:I
	E2E_MERGE_OPTS="--batch 1" # a sync after every item: slow enough to crash inside thrice
	local n=40000 # items (the title says it too): under Kafka's 1 MB message limit
	e2e_services none
	"$E2E_PY" - "$n" >"$T/events.jsonl" <<-'EOF'
		import json, sys
		items = [{"sku": "s%d" % (i % 8), "qty": 1 + i % 9} for i in range(int(sys.argv[1]))]
		evs = [{"user": "big", "seq": 1, "ts": 1700000000000, "kind": "basket", "items": items}]
		evs += [{"user": "big", "seq": s, "ts": 1700000000000 + s, "kind": "tick", "v": s} for s in range(2, 6)]
		for e in evs:
		    print(json.dumps(e, separators=(",", ":")))
	EOF
	fp-cat -r "$T/events.jsonl" | fp-produce -q -t ev -k user --value json
	local victim field pos last=0 shard
	for victim in fp-merge fp-kvwrite sh; do
		e2e_start
		# wait until this run has moved the position further into the record
		for i in $(seq 200); do
			read -r field pos < <(big_pos) || true
			[[ -n ${pos:-} && ${pos#*:} -gt $last ]] && break
			sleep 0.05
		done
		[[ -n ${pos:-} && ${pos#*:} -gt $last ]]
		shard=$(echo "$field" | cut -d/ -f3)
		e2e_crash "$victim-$shard" at-once
		read -r field pos < <(big_pos)
		echo "killed $victim-$shard at $field $pos" >&2
		((${pos#*:} > last && ${pos#*:} < n))
		last=${pos#*:}
	done
	e2e_finish
	e2e_check
	# every item counted once; the last run skipped exactly the items the
	# store held (its fp-merge started inside the record, at the index)
	[ "$(rcli hget e2e:big items)" = "$n" ]
	grep "fp-merge\[$shard\]: skipped $last records" "$T/run-$E2E_RUNS.err"
}
