#!/usr/bin/env bats
# fp-merge: records in, updates out; history from the store; exactly-once skip;
# batched loads; eviction only after the writer committed.
load helper

FIX="$TESTS_DIR/fixtures/fp-merge"

# gen RECORDS KEYS SEED [PARTITIONS] [BARRIER_EVERY] > jsonl
gen() { python3 "$FIX/gen.py" "$@"; }

# kvfake [ARGS]: a slow stand-in for fp-kvwrite reading fp-cat JSON lines.
kvfake() { python3 "$FIX/kvfake.py" "$REDIS_PORT" "$@"; }

# Updates without @state (its bytes are lib/feat's business), as JSON lines.
no_state() { jq -c 'del(.["@state"])'; }

# Every key of database DB with its fields, sorted: one line per field.
dump_db() {
	rcli -n "$1" --no-raw EVAL "local r={} for _,k in ipairs(redis.call('KEYS','*')) do \
		local h=redis.call('HGETALL',k) for i=1,#h,2 do r[#r+1]=k..' '..h[i]..'='..h[i+1] end end \
		table.sort(r) return r" 0
}

# The last update of every key, without @src/@ts/@in, sorted by key.
last_per_key() {
	jq -c 'select(has("@key")) | del(.["@src"], .["@ts"], .["@in"])' |
		jq -sc 'group_by(.["@key"])[] | last'
}

@test "fp-merge: the basic fixture gives the expected updates" {
	# hand-checked: windows as of the key's latest event time, a late event
	# (@src index 0) out of views_1h but in the others, last() newest first by
	# event time, latest() by event time, a binary key, no @src/@ts/@in
	frames_of "$FIX/basic.jsonl" >"$T/in"
	fp-merge -f "$FIX/cars.fp" --no-store --per-record <"$T/in" 2>"$T/err" | fp-cat | no_state >"$T/out"
	diff -u "$FIX/basic.expected" "$T/out"
}

@test "fp-merge: coalesced, one update per key per segment, then a sync frame" {
	# hand-checked against basic.expected: u:42's two records before the
	# barrier give one update (the second's @src and @ts, the first's @in),
	# after ann's, in the order of the keys' last records
	frames_of "$FIX/basic.jsonl" >"$T/in"
	fp-merge -f "$FIX/cars.fp" --no-store <"$T/in" 2>"$T/err" | fp-cat | no_state >"$T/out"
	diff -u "$FIX/basic.coalesced.expected" "$T/out"
	# the last update of each key equals the per-record run's (but @in)
	fp-merge -f "$FIX/cars.fp" --no-store --per-record <"$T/in" | fp-cat | no_state | last_per_key >"$T/a"
	last_per_key <"$T/out" >"$T/b"
	diff -u "$T/a" "$T/b"
}

@test "fp-merge: a sync lists every partition its segment applied, also one coalesced away" {
	# u:1's update carries only its last record's @src (partition 1); the
	# record from partition 0 is in its state, so the sync must give ev/0 too
	printf '%s\n' '{"user_id":1,"action":"view","car_id":"c1","ts":1,"@src":["ev",0,7]}' \
		'{"user_id":1,"action":"view","car_id":"c2","ts":2,"@src":["ev",1,3,0]}' >"$T/in.jsonl"
	fp-cat -r "$T/in.jsonl" | fp-merge -f "$FIX/cars.fp" --no-store | fp-cat |
		jq -c 'if has("@key") then .["@src"] else .["@pos"] end' >"$T/out"
	printf '%s\n' null '["ev",1,3,0]' '[["ev",0,"8"],["ev",1,"3:1"]]' | diff -u - "$T/out"
}

@test "fp-merge: coalescing equals one update per record, whatever the batch size" {
	gen 5000 60 11 3 400 | fp-cat -r >"$T/in"
	fp-merge -f "$FIX/cars.fp" --no-store --per-record <"$T/in" | fp-cat | last_per_key >"$T/want"
	for b in 1 7 100 16384; do
		fp-merge -f "$FIX/cars.fp" --no-store --batch "$b" -v <"$T/in" 2>"$T/err.$b" | fp-cat >"$T/out.$b"
		last_per_key <"$T/out.$b" | diff -u "$T/want" -
		# every segment ends with a sync; a key appears at most once per segment
		jq -r 'if .["@ctl"] then .["@ctl"] else .["@key"] end' "$T/out.$b" |
			awk '$0 == "sync" || $0 == "barrier" { delete seen; next } seen[$0]++ { print "twice: " $0; bad = 1 } END { exit bad }'
		[ "$(tail -1 "$T/out.$b" | jq -r '.["@ctl"]')" = sync ]
	done
	# bigger batches coalesce more
	u1=$(sed -n 's/.*updates=\([0-9]*\).*/\1/p' "$T/err.1")
	u2=$(sed -n 's/.*updates=\([0-9]*\).*/\1/p' "$T/err.16384")
	[ "$u1" -eq 5000 ] && [ "$u2" -lt 1000 ]
}

@test "fp-merge: every update carries @state as binary, and control frames keep their place" {
	frames_of "$FIX/basic.jsonl" | fp-merge -f "$FIX/cars.fp" --no-store | fp-cat >"$T/out"
	[ "$(jq -r 'select(has("@key")) | .["@state"] | keys[0]' "$T/out" | sort -u)" = "@b64" ]
	# kinds in order: u = update, then the control frames where they were
	jq -r 'if has("@ctl") then .["@ctl"] else "u" end' "$T/out" | paste -sd' ' >"$T/kinds"
	[ "$(cat "$T/kinds")" = "sync u u sync barrier u sync note u u sync" ]
}

@test "fp-merge: records without a key are dropped and counted" {
	frames_of "$FIX/basic.jsonl" >"$T/in"
	run bash -c "fp-merge -f '$FIX/cars.fp' --no-store <'$T/in' 2>&1 >/dev/null"
	[ "$status" -eq 0 ]
	[[ $output == *"fp-merge: dropped 1 records without a usable key field"* ]]
}

@test "fp-merge: usage errors exit 2" {
	run fp-merge --no-store </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"a feature file is required"* ]]
	run fp-merge -f "$FIX/cars.fp" </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"no store: give --store url, set FP_REDIS, or use --no-store"* ]]
	run fp-merge -f "$FIX/cars.fp" --no-store --store redis://127.0.0.1:1 </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"exclude each other"* ]]
	run fp-merge -f "$FIX/cars.fp" --no-store --max-keys 0 </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"--max-keys"* ]]
	run fp-merge -f "$T/missing.fp" --no-store </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"missing.fp"* ]]
	printf 'key user_id\nviews = count(\n' >"$T/bad.fp"
	run fp-merge -f "$T/bad.fp" --no-store </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"bad.fp:2:"* ]]
	FP_SHARD=2 FP_SHARDS=2 run fp-merge -f "$FIX/cars.fp" --no-store </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"FP_SHARD '2'"* ]]
}

@test "fp-merge: bad input exits 1 after writing the updates before it" {
	{ frames_of "$FIX/basic.jsonl"; printf '{"user_id":1}\n'; } >"$T/in"
	run bash -c "fp-merge -f '$FIX/cars.fp' --no-store --per-record <'$T/in' 2>'$T/err' | fp-cat | wc -l"
	[ "$output" -eq 8 ]
	# coalesced: the last segment before the bad frame is written and synced
	run bash -c "fp-merge -f '$FIX/cars.fp' --no-store <'$T/in' 2>/dev/null | fp-cat | jq -c '.[\"@ctl\"] // .[\"@key\"]' | paste -sd' '"
	[ "$output" = '"sync" "u:ann" "u:42" "sync" "barrier" "u:42" "sync" "note" {"@b64":"dTr/"} "u:42" "sync"' ]
	run bash -c "fp-merge -f '$FIX/cars.fp' --no-store <'$T/in' >/dev/null"
	[ "$status" -eq 1 ]
	grep -q "fp-merge: frame 10 at offset [0-9]*: input looks like JSON lines" "$T/err"
	printf '%s\n' '{"user_id":1,"ts":1,"@src":["ev","zero",1]}' | fp-cat -r >"$T/in2"
	run bash -c "fp-merge -f '$FIX/cars.fp' --no-store <'$T/in2' >/dev/null"
	[ "$status" -eq 1 ] && [[ $output == *"frame 1: @src is not [topic, partition, offset]"* ]]
}

@test "fp-merge: without a store, more keys than --max-keys is an error, never a silent reset" {
	gen 50 20 1 | fp-cat -r >"$T/in"
	run bash -c "fp-merge -f '$FIX/cars.fp' --no-store --max-keys 5 --batch 4 <'$T/in' >/dev/null"
	[ "$status" -eq 1 ]
	[[ $output == *"more than 5 keys (--max-keys) in memory, and without a store"* ]]
}

@test "fp-merge: a reader that goes away is a quiet stop" {
	gen 3000 50 2 | fp-cat -r >"$T/in"
	run bash -c "fp-merge -f '$FIX/cars.fp' --no-store <'$T/in' | head -c 100 >/dev/null"
	[ "$status" -eq 0 ] && [ -z "$output" ]
}

@test "fp-merge: an unreachable store is exit 4" {
	port=$(free_port)
	run fp-merge -f "$FIX/cars.fp" --store "redis://127.0.0.1:$port" </dev/null
	[ "$status" -eq 4 ] && [[ $output == *"unable to connect to Redis at 127.0.0.1:$port"* ]]
}

@test "fp-merge: history: half the events, a restart that replays some, the rest = one run" {
	start_redis
	gen 600 40 3 2 50 >"$T/all.jsonl"
	# one run into database 1
	fp-cat -r "$T/all.jsonl" | fp-merge -f "$FIX/cars.fp" --store "redis://127.0.0.1:$REDIS_PORT/1" |
		fp-cat | kvfake --db 1
	# two runs into database 0: lines 1-330, then 200-end (a replay that overlaps)
	head -n 330 "$T/all.jsonl" | fp-cat -r | fp-merge -f "$FIX/cars.fp" | fp-cat | kvfake
	tail -n +200 "$T/all.jsonl" | fp-cat -r | fp-merge -f "$FIX/cars.fp" -v 2>"$T/err" |
		fp-cat | kvfake
	cat "$T/err"
	grep -q 'skipped [1-9][0-9]* records already applied' "$T/err"
	grep -q 'loaded=[1-9]' "$T/err"
	dump_db 1 >"$T/one"
	dump_db 0 >"$T/two"
	[ "$(grep -c ' @state=' "$T/one")" -eq 40 ]
	diff -u "$T/one" "$T/two"
	# and the features equal those of a run without a store
	fp-cat -r "$T/all.jsonl" | fp-merge -f "$FIX/cars.fp" --no-store | fp-cat | last_per_key |
		jq -r '.["@key"] as $k | to_entries[] | select(.key != "@key" and .key != "@ttl" and .key != "@state") |
			"\($k) \(.key)=\(.value | if type == "string" then . elif . == null then "-" else tojson end)"' |
		grep -v -- '=-$' | sort >"$T/nostore"
	rcli -n 0 --raw EVAL "local r={} for _,k in ipairs(redis.call('KEYS','u:*')) do \
		local h=redis.call('HGETALL',k) for i=1,#h,2 do if h[i] ~= '@state' then r[#r+1]=k..' '..h[i]..'='..h[i+1] end end end \
		table.sort(r) return r" 0 >"$T/stored"
	diff -u "$T/nostore" "$T/stored"
}

@test "fp-merge: records below this shard's stored offsets are skipped, (offset, index) included" {
	start_redis
	rcli HSET fp:p1:offsets ev/0/1/2 5:2 ev/1/1/2 3 ev/0/0/2 100 ev/0/1/3 100 >/dev/null
	cat >"$T/in.jsonl" <<-'EOF'
	{"user_id":1,"ts":1,"@src":["ev",0,4]}
	{"user_id":1,"ts":1,"@src":["ev",0,5,0]}
	{"user_id":1,"ts":1,"@src":["ev",0,5,1]}
	{"user_id":1,"ts":1,"@src":["ev",0,5,2]}
	{"user_id":1,"ts":1,"@src":["ev",1,2]}
	{"user_id":1,"ts":1,"@src":["ev",1,3]}
	{"user_id":1,"ts":1,"@src":["ev",0,6]}
	{"user_id":1,"ts":1,"@src":["other",0,0]}
	EOF
	fp-cat -r "$T/in.jsonl" | FP_PIPELINE=p1 FP_SHARD=1 FP_SHARDS=2 fp-merge -f "$FIX/cars.fp" \
		--per-record 2>"$T/err" | fp-cat >"$T/frames"
	# first the origin: this shard's stored positions, before any update
	head -1 "$T/frames" | jq -c '[.["@ctl"], .["@pipeline"], .["@shard"], .["@shards"], (.["@pos"] | sort)]' |
		diff -u - <(echo '["origin","p1",1,2,[["ev",0,"5:2"],["ev",1,"3"]]]')
	tail -n +2 "$T/frames" | jq -c '.["@src"]' >"$T/out"
	printf '%s\n' '["ev",0,5,2]' '["ev",1,3]' '["ev",0,6]' '["other",0,0]' | diff -u - "$T/out"
	grep -q 'fp-merge\[1\]: skipped 4 records already applied (below the stored offsets)' "$T/err"
}

@test "fp-merge: a stored @state that cannot be decoded stops with the key named" {
	start_redis
	rcli HSET u:42 @state 'not a state' views 3 >/dev/null
	printf '%s\n' '{"user_id":7,"ts":1,"@src":["ev",0,0]}' '{"user_id":42,"ts":1,"@src":["ev",0,1]}' |
		fp-cat -r >"$T/in"
	run bash -c "set -o pipefail; fp-merge -f '$FIX/cars.fp' <'$T/in' | fp-cat"
	[ "$status" -eq 1 ]
	[[ $output == *"fp-merge: key 'u:42': the stored @state cannot be decoded ("*"); refusing to start this key over"* ]]
	[[ $output != *'"@key"'* ]]
	[ "$(rcli HGET u:42 views)" = 3 ]
}

@test "fp-merge: a key of the wrong type in Redis is exit 4" {
	start_redis
	rcli SET u:42 x >/dev/null
	printf '%s\n' '{"user_id":42,"ts":1}' | fp-cat -r >"$T/in"
	run bash -c "fp-merge -f '$FIX/cars.fp' <'$T/in' >/dev/null"
	[ "$status" -eq 4 ] && [[ $output == *"HGET 'u:42' @state: WRONGTYPE"* ]]
}

@test "fp-merge: loads are batched: one pipelined round trip for 2000 keys" {
	start_redis
	seq 0 1999 | jq -c '{user_id: ., action: "view", car_id: "c1", ts: 1000, "@src": ["ev", 0, .]}' >"$T/a.jsonl"
	fp-cat -r "$T/a.jsonl" | fp-merge -f "$FIX/cars.fp" | fp-cat | kvfake --every 5000
	seq 0 1999 | jq -c '{user_id: ., action: "view", car_id: "c2", ts: 2000, "@src": ["ev", 0, (. + 2000)]}' |
		fp-cat -r >"$T/b"
	rcli CONFIG RESETSTAT >/dev/null
	fp-merge -f "$FIX/cars.fp" -v <"$T/b" 2>"$T/err" | fp-cat >"$T/out"
	cat "$T/err"
	grep -q 'loads=2000 loaded=2000' "$T/err"
	rt=$(sed -n 's/.*round_trips=\([0-9]*\).*/\1/p' "$T/err")
	[ "$rt" -ge 1 ] && [ "$rt" -le 2 ]
	# Redis's own count: 2000 HGETs arrived in few reads
	calls=$(rcli INFO commandstats | sed -n 's/^cmdstat_hget:calls=\([0-9]*\),.*/\1/p')
	reads=$(rcli INFO stats | sed -n 's/^total_reads_processed:\([0-9]*\).*/\1/p')
	echo "hget calls=$calls reads=$reads"
	[ "$calls" -eq 2000 ] && [ "$reads" -lt 100 ]
	# every key continued from its history
	[ "$(jq -r 'select(.views == 2) | .["@key"]' "$T/out" | wc -l)" -eq 2000 ]
}

@test "fp-merge: --max-keys far below the keys: evicted keys come back only once committed" {
	start_redis
	gen 3000 300 4 2 700 | fp-cat -r >"$T/in"
	# database 1: every key stays in memory
	fp-merge -f "$FIX/cars.fp" --store "redis://127.0.0.1:$REDIS_PORT/1" <"$T/in" |
		fp-cat | kvfake --db 1 --every 100000
	# database 0: 10 keys in memory, a writer that commits late
	fp-merge -f "$FIX/cars.fp" --max-keys 10 --batch 16 -v <"$T/in" 2>"$T/err" |
		fp-cat | kvfake --every 40 --delay-ms 20 --flush-ms 30
	cat "$T/err"
	grep -q 'evicted=[1-9][0-9][0-9]' "$T/err"
	grep -q 'waits=[1-9]' "$T/err"
	keys_peak=$(sed -n 's/.*keys_peak=\([0-9]*\).*/\1/p' "$T/err")
	[ "$keys_peak" -le 42 ] # max-keys + batch (kept until committed) + one batch of new keys
	dump_db 1 >"$T/want"
	dump_db 0 >"$T/got"
	[ "$(grep -c ' @state=' "$T/want")" -eq 300 ]
	diff -u "$T/want" "$T/got"
}

@test "fp-merge: with fp-kvwrite, --max-keys far below the keys loses nothing" {
	command -v fp-kvwrite >/dev/null || skip "fp-kvwrite is not built on this branch"
	start_redis
	gen 3000 300 5 2 700 >"$T/all.jsonl"
	fp-cat -r "$T/all.jsonl" >"$T/in"
	fp-merge -f "$FIX/cars.fp" --max-keys 10 --batch 16 -v <"$T/in" 2>"$T/err" |
		fp-kvwrite --flush-ms 20 --max-batch 50
	cat "$T/err"
	grep -q 'evicted=[1-9][0-9][0-9]' "$T/err"
	fp-merge -f "$FIX/cars.fp" --no-store <"$T/in" | fp-cat | last_per_key |
		jq -r '.["@key"] + " " + (.views | tostring) + " " + (.recent | tostring)' | sort >"$T/want"
	rcli --raw EVAL "local r={} for _,k in ipairs(redis.call('KEYS','u:*')) do \
		r[#r+1]=k..' '..redis.call('HGET',k,'views')..' '..redis.call('HGET',k,'recent') end \
		table.sort(r) return r" 0 >"$T/got"
	diff -u "$T/want" "$T/got"
}

@test "fp-merge: without a committing writer, eviction waits --commit-wait then exits 4" {
	start_redis
	gen 200 100 6 | fp-cat -r >"$T/in"
	run bash -c "fp-merge -f '$FIX/cars.fp' --max-keys 5 --batch 5 --commit-wait 300ms <'$T/in' >/dev/null"
	[ "$status" -eq 4 ]
	[[ $output == *"waited 300 ms for the store's offsets to show the last update of key 'u:"*"committed (ev/"*"); is fp-kvwrite running?"* ]]
}

@test "fp-merge: the man page examples run" {
	cd "$T"
	cp "$FIX/cars.fp" used_car.fp
	printf '%s\n' '{"user_id":42,"action":"view","car_id":"c1","price":9.5,"ts":1000}' >ev.jsonl
	run bash -c "set -o pipefail; fp-cat -r ev.jsonl | fp-merge -f used_car.fp --no-store | fp-cat | jq -c 'select(has(\"@key\")) | {\"@key\": .[\"@key\"], views, recent}'"
	[ "$status" -eq 0 ]
	[ "$output" = '{"@key":"u:42","views":1,"recent":["c1"]}' ]
}

@test "fp-merge: the man page example with a store and fp-kvwrite runs" {
	command -v fp-kvwrite >/dev/null || skip "fp-kvwrite is not built on this branch"
	start_redis
	cd "$T"
	cp "$FIX/cars.fp" used_car.fp
	printf '%s\n' '{"user_id":42,"action":"view","car_id":"c1","price":9.5,"ts":1000}' >ev.jsonl
	fp-cat -r ev.jsonl | fp-merge -f used_car.fp | fp-kvwrite 2>/dev/null
	[ "$(rcli HGET u:42 views)" = 1 ]
	fp-cat -r ev.jsonl | fp-merge -f used_car.fp | fp-kvwrite 2>/dev/null
	[ "$(rcli HGET u:42 views)" = 2 ]
}

# merge_waiting: fp-merge (--max-keys 2, stored offset ev/0 = 1) given 40
# keys and no writer: it waits, re-reading the offsets (3 reads seen).
merge_waiting() {
	start_redis
	rcli HSET fp:default:offsets ev/0/0/1 1 >/dev/null
	seq 1 40 | jq -c '{user_id: ., ts: 1, "@src": ["ev", 0, .]}' | fp-cat -r >"$T/in"
	mkfifo "$T/fifo"
	bg_start merge bash -c "exec fp-merge -f '$FIX/cars.fp' --max-keys 2 --batch 4 --commit-wait 20s <'$T/fifo'"
	exec 8>"$T/fifo"
	cat "$T/in" >&8
	wait_for bash -c "[ \$(redis-cli -p $REDIS_PORT INFO commandstats |
		sed -n 's/^cmdstat_hgetall:calls=\([0-9]*\),.*/\1/p') -ge 3 ]"
}

# merge_stops STATUS: the waiting fp-merge exits by itself with STATUS.
merge_stops() {
	local status=0
	wait_for bash -c "! kill -0 $BG_PID"
	exec 8>&-
	wait "$BG_PID" || status=$?
	[ "$status" -eq "$1" ]
}

@test "fp-merge: stored offsets that vanish (Redis lost data) stop it with exit 4" {
	merge_waiting
	rcli DEL fp:default:offsets >/dev/null
	merge_stops 4
	grep -q "fp-merge: the store's offset for ev/0 went back from 1 to nothing: Redis lost data" "$T/merge.err"
}

@test "fp-merge: stored offsets moved past what it passed on (another writer) stop it with exit 4" {
	merge_waiting
	# what it passed on stays below 42 (it waits for the writer after a few
	# batches): 100 is not its own writer's
	rcli HSET fp:default:offsets ev/0/0/1 100 >/dev/null
	merge_stops 4
	grep -q "fp-merge: another writer changed the stored offsets of shard 0/1: ev/0 is at 100, but this fp-merge has passed on only [0-9]*; is an old pipeline still running?" "$T/merge.err"
}

@test "fp-merge: stored offsets that reach what it passed on (its own writer) are accepted" {
	start_redis
	rcli HSET fp:default:offsets ev/0/0/1 1 >/dev/null
	seq 1 40 | jq -c '{user_id: ., ts: 1, "@src": ["ev", 0, .]}' | fp-cat -r >"$T/in"
	echo '{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,50],["ev",1,7]]}' | fp-cat -r >>"$T/in"
	fp-merge -f "$FIX/cars.fp" --max-keys 2 --batch 4 <"$T/in" 2>"$T/err" | fp-kvwrite --flush-ms 5 --max-batch 3
	[ "$(rcli HGET fp:default:offsets ev/0/0/1)" = 50 ] && [ "$(rcli HGET fp:default:offsets ev/1/0/1)" = 7 ]
}
