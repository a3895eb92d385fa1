#!/usr/bin/env bats
# fp-kvwrite: updates to Redis in atomic epochs with the shard's offsets.
load helper

FX="$TESTS_DIR/fixtures/fp-kvwrite"

# redis_on PORT [ARGS...]: a redis-server on a known port (so it can be
# restarted on the same one), data in $T/redis.
redis_on() {
	local port=$1; shift
	mkdir -p "$T/redis"
	bg_start "redis-$port-${#FP_PIDS[@]}" redis-server --port "$port" --bind 127.0.0.1 \
		--save '' --dir "$T/redis" --daemonize no "$@"
	REDIS_PID=$BG_PID
	REDIS_PORT=$port
	export FP_REDIS="redis://127.0.0.1:$port/0"
	wait_for redis-cli -p "$port" ping
}

# gen N KEYS [DELAY]: N updates round-robin over KEYS keys, partition ev/0,
# offsets 0..N-1; field n counts the key's updates, seq is the offset.
gen() {
	python3 - "$@" <<'EOF'
import sys, time, json
n, keys = int(sys.argv[1]), int(sys.argv[2])
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0
cnt = {}
for i in range(n):
    k = "k%d" % (i % keys)
    cnt[k] = cnt.get(k, 0) + 1
    print(json.dumps({"@key": k, "@src": ["ev", 0, i], "n": cnt[k], "seq": i,
                      "@state": {"@b64": "AA=="}}), flush=True)
    if delay:
        time.sleep(delay)
EOF
}

# dump: every key of the Redis on $REDIS_PORT with its type and contents,
# sorted, binary-safe (redis-cli quotes the bytes).
dump() {
	redis-cli -p "$REDIS_PORT" --no-raw eval "
		local keys = redis.call('KEYS', '*')
		table.sort(keys)
		local out = {}
		for _, k in ipairs(keys) do
			local t = redis.call('TYPE', k)['ok']
			table.insert(out, 'key') table.insert(out, k) table.insert(out, t)
			if t == 'hash' then
				local h = redis.call('HGETALL', k)
				local f = {}
				for i = 1, #h, 2 do table.insert(f, h[i]) end
				table.sort(f)
				for _, x in ipairs(f) do table.insert(out, x) table.insert(out, redis.call('HGET', k, x)) end
			elseif t == 'zset' then
				for _, x in ipairs(redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')) do table.insert(out, x) end
			end
		end
		return out" 0 | sed 's/^ *[0-9]*) //'
}

has_offset() {
	[ "$(rcli hexists fp:default:offsets ev/0/0/1)" = 1 ]
}

# offset_is V: the stored position of ev/0 for shard 0/1 is V.
offset_is() {
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = "$1" ]
}

@test "values and offsets land together; numbers, strings, JSON lists, ttl, nil deletes" {
	start_redis
	rcli hset u:1 max 99 stale 1 >/dev/null
	frames_of "$FX/basic.jsonl" | fp-kvwrite 2>"$T/err"
	grep -q 'persistence is off' "$T/err"
	[ "$(rcli hget u:1 views)" = 2 ]
	[ "$(rcli hget u:1 avg)" = 9.75 ]
	[ "$(rcli hget u:2 avg)" = 3.0 ]
	[ "$(rcli hget u:1 city)" = 'Paris "15e"' ]
	[ "$(rcli hget u:1 recent)" = '["c2","c1"]' ]
	[ "$(rcli hget u:1 top)" = '[["bmw",2],["audi",1]]' ]
	[ "$(rcli hget u:1 max)" = 12.5 ]
	[ "$(rcli hget u:1 @state | od -An -tx1 | tr -d ' \n')" = 9302030a ]
	[ "$(rcli hget u:1 stale)" = 1 ]            # fields it does not know stay
	[ "$(rcli ttl u:1)" -gt 4040 ] && [ "$(rcli ttl u:1)" -le 4050 ] # @ttl 3600 + 3600/8
	[ "$(rcli ttl u)" = -1 ]                    # no @ttl: no EXPIRE
	[ "$(rcli hget u:1 @src)" = '' ]            # @src, @ts, @in, @key are not stored
	diff -u <(printf '%s\n' ev/0/0/1 12:3 ev/1/0/1 5 ev/2/0/1 100) <(rcli hgetall fp:default:offsets)
}

@test "a nil feature deletes its field" {
	start_redis
	rcli hset u:9 max 99 views 1 >/dev/null
	printf '%s\n' '{"@key":"u:9","views":2,"max":null}' | frames_of | fp-kvwrite 2>/dev/null
	[ "$(rcli hexists u:9 max)" = 0 ]
	[ "$(rcli hget u:9 views)" = 2 ]
}

@test "an update of 100 features: every field written (more than the frame check notes)" {
	python3 -c '
import json
d = {"@key": "u:1", "@src": ["ev", 0, 0]}
for i in range(100):
    d["f%d" % i] = i
d["@state"] = {"@b64": "AA=="}
print(json.dumps(d))' | frames_of | fp-kvwrite --dry-run >"$T/out"
	want=$(python3 -c 'print("HSET \"u:1\" " + " ".join("\"f%d\" \"%d\"" % (i, i) for i in range(100)) + " \"@state\" \"\\x00\"")')
	[ "$(grep '^HSET "u:1"' "$T/out")" = "$want" ]
}

@test "updates of every size reuse the same entries: small, over 4 KiB, over 512 fields; Redis holds each key's fields" {
	start_redis
	# --max-batch 1: an epoch per update, so the two epochs' entries take
	# every size in turn (grown from the slab, past it with malloc, shrunk)
	python3 - >"$T/in.jsonl" 3>"$T/want" <<-'EOF'
		import json, os
		# each entry in turn: small, bodies of 5 and 20 KB, 600 then 1000
		# fields (their hashes past 4 KiB too), small again; twice
		kinds = [("s", 1), ("big", 5000), ("big", 20000), ("wide", 600), ("wide", 1000), ("s", 1)]
		want = {}
		for n, (kind, m) in enumerate([k for k in kinds for _ in (0, 1)] * 2):
		    k = "k%d" % (n % 4)
		    d = {"@key": k, "@src": ["ev", 0, n]}
		    if kind == "big":
		        d["blob"] = "%d:" % n + "x" * m
		    elif kind == "wide":
		        d.update(("f%d" % i, n + i) for i in range(m))
		    else:
		        d["v"] = n
		    d["@state"] = {"@b64": "QUJD"}
		    print(json.dumps(d))
		    h = want.setdefault(k, {})
		    h.update((f, str(v) if f != "@state" else "ABC") for f, v in d.items() if f[0] != "@" or f == "@state")
		with os.fdopen(3, "w") as w:
		    for k in sorted(want):
		        for f in sorted(want[k]):
		            w.write("%s\t%s\t%s\n" % (k, f, want[k][f]))
	EOF
	frames_of "$T/in.jsonl" | fp-kvwrite --flush-ms 0 --max-batch 1
	for k in k0 k1 k2 k3; do
		rcli hgetall "$k" | paste - - | sed "s/^/$k\t/"
	done | LC_ALL=C sort >"$T/got"
	LC_ALL=C sort "$T/want" | diff - "$T/got"
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = 24 ]
}

@test "one epoch of 100000 keys, sent while Redis is stopped (the socket takes it in parts): every key lands" {
	start_redis
	gen 200000 100000 | frames_of >"$T/in"
	# connected (the preflight done), then Redis stops: the commit's megabytes
	# go out as the socket takes them, resumed mid-piece after SIGCONT
	(until [ -e "$T/go" ]; do sleep 0.05; done; cat "$T/in") |
		timeout 60 fp-kvwrite -v --flush-ms 0 --max-batch 100001 2>"$T/err" &
	local pid=$!
	for i in $(seq 100); do
		[ "$(rcli info clients | tr -d '\r' | sed -n 's/^connected_clients://p')" -ge 2 ] && break
		sleep 0.05
	done
	kill -STOP "$REDIS_PID"
	touch "$T/go"
	sleep 2
	kill -CONT "$REDIS_PID"
	wait "$pid"
	grep -q ' epochs=1 keys=100000 ' "$T/err"
	[ "$(rcli dbsize)" = 100002 ] # and the offsets hash, the fence key
	for k in 0 1 50000 99999; do
		[ "$(rcli hmget k$k n seq | paste -sd' ')" = "2 $((100000 + k))" ]
	done
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = 200000 ]
}

@test "coalescing: many updates of one key in an epoch are one HSET of the latest" {
	start_redis
	gen 3000 3 | frames_of | fp-kvwrite --flush-ms 0 2>/dev/null
	rcli info commandstats >"$T/stats"
	grep -q '^cmdstat_hset:calls=4,' "$T/stats"      # 3 keys + the offsets
	grep -q '^cmdstat_exec:calls=1,' "$T/stats"
	[ "$(rcli hget k0 n)" = 1000 ] && [ "$(rcli hget k2 seq)" = 2999 ]
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = 3000 ]
}

@test "commit on barrier and on --max-batch keys (--dry-run)" {
	frames_of "$FX/basic.jsonl" | fp-kvwrite --dry-run --flush-ms 0 >"$T/out"
	[ "$(grep -c '^MULTI$' "$T/out")" = 2 ]      # the barrier, then the end of input
	gen 5 5 | frames_of | fp-kvwrite --dry-run --flush-ms 0 --max-batch 2 >"$T/out"
	[ "$(grep -c '^EXEC$' "$T/out")" = 3 ]
	diff -u <(grep fp:default:offsets "$T/out") - <<'EOF'
HSET "fp:default:offsets" "ev/0/0/1" "2"
HSET "fp:default:offsets" "ev/0/0/1" "4"
HSET "fp:default:offsets" "ev/0/0/1" "5"
EOF
}

@test "commit on the --flush-ms timer while input stays open" {
	start_redis
	mkfifo "$T/in"
	bg_start kv fp-kvwrite --flush-ms 200 "$T/in"
	exec 7>"$T/in"
	gen 2 2 | frames_of >&7
	wait_for offset_is 2
	[ "$(rcli hget k1 n)" = 1 ]
	exec 7>&-
	wait "$BG_PID"
}

@test "--dry-run prints the epoch's commands; redis-cli replays them to the same state" {
	frames_of "$FX/basic.jsonl" | fp-kvwrite --dry-run --zset top >"$T/dry"
	diff -u "$FX/basic.dry" "$T/dry"
	start_redis
	rcli <"$T/dry" >/dev/null
	dump >"$T/a"
	rcli flushall >/dev/null
	frames_of "$FX/basic.jsonl" | fp-kvwrite --zset top 2>/dev/null
	dump >"$T/b"
	diff -u "$T/a" "$T/b"
}

@test "--zset writes a top-k feature as a sorted set too" {
	start_redis
	rcli zadd u:1:top 5 old >/dev/null
	frames_of "$FX/basic.jsonl" | fp-kvwrite --zset top 2>/dev/null
	diff -u <(printf '%s\n' bmw 2 audi 1) <(rcli zrevrange u:1:top 0 -1 withscores)
	[ "$(rcli exists u:top)" = 0 ]        # a nil top-k leaves no set
	printf '%s\n' '{"@key":"x","top":[["a","b"]]}' | frames_of >"$T/bad"
	run fp-kvwrite --dry-run --zset top "$T/bad"
	[ "$status" -eq 1 ]
	[[ $output == *"frame 1: feature 'top' of 'x' is not a top-k list"* ]]
}

@test "binary keys with NUL and spaces stay distinct" {
	start_redis
	frames_of "$FX/basic.jsonl" | fp-kvwrite 2>/dev/null
	dump | grep -A1 '^"key"$' | grep -v -e '^"key"$' -e '^--$' >"$T/keys"
	diff -u - "$T/keys" <<'EOF'
"fp:default:fence:0/1"
"fp:default:offsets"
"u"
"u\x001"
"u 1"
"u:1"
"u:2"
EOF
}

@test "a key of the wrong type: clear error, exit 4, nothing of the epoch written, offsets kept" {
	start_redis
	rcli hset fp:default:offsets ev/0/0/1 3 >/dev/null
	rcli set u:2 'a string' >/dev/null
	frames_of "$FX/basic.jsonl" >"$T/in"
	run fp-kvwrite "$T/in"
	[ "$status" -eq 4 ]
	[[ $output == *"key 'u:2' in Redis is a string, not a hash: nothing of this epoch was written"* ]]
	[ "$(rcli exists u:1)" = 0 ]
	diff -u <(printf '%s\n' ev/0/0/1 3) <(rcli hgetall fp:default:offsets)
	[ "$(rcli get u:2)" = 'a string' ]
}

@test "the shard's fence key of the wrong type: exit 4, nothing written; a commit increments it" {
	start_redis
	rcli hset fp:default:fence:0/1 x y >/dev/null
	frames_of "$FX/basic.jsonl" >"$T/in"
	run fp-kvwrite "$T/in"
	[ "$status" -eq 4 ]
	[[ $output == *"key 'fp:default:fence:0/1' in Redis is a hash, not this shard's fence counter"* ]]
	[ "$(rcli exists u:1)" = 0 ] && [ "$(rcli exists fp:default:offsets)" = 0 ]
	rcli del fp:default:fence:0/1 >/dev/null
	FP_SHARD=1 FP_SHARDS=3 fp-kvwrite --max-batch 1 "$T/in" 2>/dev/null
	[ "$(rcli get fp:default:fence:1/3)" -ge 2 ]
	[ "$(rcli exists fp:default:fence:0/1)" = 0 ]
}

@test "an evicting maxmemory-policy is refused (exit 2)" {
	start_redis --maxmemory-policy allkeys-lru
	frames_of "$FX/basic.jsonl" >"$T/in"
	run fp-kvwrite "$T/in"
	[ "$status" -eq 2 ]
	[[ $output == *"maxmemory-policy is 'allkeys-lru': it would evict features or offsets"* ]]
	[ "$(rcli dbsize)" = 0 ]
}

@test "CONFIG renamed away: a warning, and the writes still happen" {
	start_redis --rename-command CONFIG ''
	frames_of "$FX/basic.jsonl" | fp-kvwrite 2>"$T/err"
	grep -q 'CONFIG GET is refused by this Redis' "$T/err"
	[ "$(rcli hget u:1 views)" = 2 ]
}

@test "a truncated last frame: the whole updates are committed, then exit 1" {
	start_redis
	frames_of "$FX/basic.jsonl" >"$T/in"
	printf '\0\0\0\x20\x81' >>"$T/in"
	run fp-kvwrite "$T/in"
	[ "$status" -eq 1 ]
	[[ $output == *"truncated"* ]] || [[ $output == *"cut short"* ]] || [[ $output == *"frame 8"* ]]
	[ "$(rcli hget u views)" = 3 ]
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = 12:3 ]
}

@test "an update without @key: exit 1 naming the frame; what came before is committed" {
	start_redis
	printf '%s\n' '{"@key":"a","@src":["ev",0,0],"v":1}' '{"v":2}' | frames_of >"$T/in"
	run fp-kvwrite "$T/in"
	[ "$status" -eq 1 ]
	[[ $output == *"frame 2: update has no @key"* ]]
	[ "$(rcli hget a v)" = 1 ]
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = 1 ]
}

@test "FP_PIPELINE, FP_SHARD and FP_SHARDS name the offsets" {
	printf '%s\n' '{"@key":"a","@src":["ev",3,7,2],"v":1}' | frames_of >"$T/in"
	FP_PIPELINE=cars FP_SHARD=1 FP_SHARDS=4 fp-kvwrite --dry-run "$T/in" >"$T/out"
	grep -qx 'HSET "fp:cars:offsets" "ev/3/1/4" "7:3"' "$T/out"
	run env FP_SHARD=4 FP_SHARDS=4 fp-kvwrite --dry-run "$T/in"
	[ "$status" -eq 2 ]
}

@test "positions never move back; a barrier moves every partition it lists" {
	printf '%s\n' '{"@key":"a","@src":["ev",0,9],"v":1}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,5],["ev",1,3]]}' \
		'{"@key":"a","@src":["ev",0,9,0],"v":2}' | frames_of >"$T/in"
	fp-kvwrite --dry-run "$T/in" >"$T/out"
	diff -u <(grep fp:default:offsets "$T/out") - <<'EOF'
HSET "fp:default:offsets" "ev/0/0/1" "10" "ev/1/0/1" "3"
EOF
}

@test "no store: usage error" {
	run fp-kvwrite </dev/null
	[ "$status" -eq 2 ]
	[[ $output == *"no store"* ]]
}

@test "redis-server killed and restarted (AOF always): reconnects, nothing lost or doubled" {
	port=$(free_port)
	redis_on "$port" --appendonly yes --appendfsync always
	gen 300 7 0.01 | fp-cat -r -u | fp-kvwrite --flush-ms 50 --timeout 1s -v 2>"$T/kv.err" &
	kv=$!
	FP_PIDS+=("$kv")
	sleep 1
	kill -9 "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null || true
	sleep 0.5
	redis_on "$port" --appendonly yes --appendfsync always
	wait "$kv"
	grep -q 'Redis is back' "$T/kv.err"
	[ "$(redis-cli -p "$port" hget fp:default:offsets ev/0/0/1)" = 300 ]
	gen 300 7 | frames_of >"$T/all"
	dump >"$T/got"
	redis-cli -p "$port" flushall >/dev/null
	fp-kvwrite "$T/all" 2>/dev/null
	dump >"$T/want"
	diff -u "$T/want" "$T/got"
}

@test "redis-server restarted without persistence: the data loss is noticed (exit 4), a replay restores" {
	port=$(free_port)
	redis_on "$port"
	gen 300 7 0.01 | fp-cat -r -u | fp-kvwrite --flush-ms 50 --timeout 1s 2>"$T/kv.err" &
	kv=$!
	FP_PIDS+=("$kv")
	sleep 1
	kill -9 "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null || true
	redis_on "$port"
	st=0
	wait "$kv" || st=$?
	[ "$st" -eq 4 ]
	grep -q 'Redis lost data: .fp:default:offsets. field .ev/0/0/1. holds nothing but this process committed' "$T/kv.err"
	# the pipeline restarts from what the store holds (nothing): a full replay
	gen 300 7 | frames_of | fp-kvwrite 2>/dev/null
	[ "$(redis-cli -p "$port" hget fp:default:offsets ev/0/0/1)" = 300 ]
	[ "$(redis-cli -p "$port" hget k6 n)" = 42 ]
}

@test "Redis paused with SIGSTOP: timeouts, backpressure (stops reading), recovery after SIGCONT" {
	start_redis
	mkfifo "$T/in"
	gen 3000 50 0.0005 | fp-cat -r -u >"$T/in" &
	FP_PIDS+=("$!")
	bg_start kv fp-kvwrite --flush-ms 20 --timeout 300ms "$T/in"
	kv=$BG_PID
	wait_for has_offset
	kill -STOP "$REDIS_PID"
	sleep 1.5
	r1=$(awk '/^rchar/ {print $2}' "/proc/$kv/io")
	sleep 1
	r2=$(awk '/^rchar/ {print $2}' "/proc/$kv/io")
	[ "$r1" = "$r2" ]                               # not reading while Redis is away
	grep -q 'no reply to the commit' "$T/kv.err"
	kill -CONT "$REDIS_PID"
	wait "$kv"
	grep -q 'Redis is back' "$T/kv.err"
	grep -Eq 'lost had (been|not been) applied' "$T/kv.err"
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = 3000 ]
	[ "$(rcli hget k49 n)" = 60 ] && [ "$(rcli hget k0 seq)" = 2950 ]
}

@test "--give-up-after: exit 4 when Redis stays away" {
	port=$(free_port)
	frames_of "$FX/basic.jsonl" >"$T/in"
	run fp-kvwrite --store "redis://127.0.0.1:$port/0" --give-up-after 1s "$T/in"
	[ "$status" -eq 4 ]
	[[ $output == *"unable to connect to Redis"*"retrying with backoff"* ]]
	[[ $output == *"giving up after 1."*"s (--give-up-after)"* ]]
}

@test "man page example: dry run" {
	printf '%s\n' '{"@key":"u:42","@src":["views",0,17],"@ttl":86400,"view_1h":3,"@state":{"@b64":"kQM="}}' >"$T/up.jsonl"
	fp-cat -r "$T/up.jsonl" | fp-kvwrite --dry-run >"$T/out"
	diff -u - "$T/out" <<'EOF'
MULTI
HSET "u:42" "view_1h" "3" "@state" "\x91\x03"
EXPIRE "u:42" "97200"
HSET "fp:default:offsets" "views/0/0/1" "18"
INCR "fp:default:fence:0/1"
EXEC
EOF
}

@test "man page example: --zset and ZREVRANGE" {
	start_redis
	printf '%s\n' '{"@key":"u:42","@src":["views",0,18],"top_brands":[["bmw",3],["vw",1]]}' |
		fp-cat -r | fp-kvwrite --store "$REDIS_URL" --zset top_brands 2>/dev/null
	[ "$(rcli hget u:42 top_brands)" = '[["bmw",3],["vw",1]]' ]
	diff -u <(printf '%s\n' bmw 3 vw 1) <(rcli zrevrange u:42:top_brands 0 4 withscores)
}

@test "a busy Redis (long script) is waited for like a down one" {
	start_redis --busy-reply-threshold 100
	bg_start busy redis-cli -p "$REDIS_PORT" eval 'local i = 0 while true do i = i + 1 end' 0
	sleep 0.5
	frames_of "$FX/basic.jsonl" >"$T/in"
	bg_start kv fp-kvwrite --timeout 2s "$T/in"
	kv=$BG_PID
	wait_for grep -q "answers PING with 'BUSY" "$T/kv.err"
	rcli script kill >/dev/null
	wait "$kv"
	grep -q 'Redis is back' "$T/kv.err"
	[ "$(rcli hget u:1 views)" = 2 ]
}

@test "option values are checked" {
	run fp-kvwrite --dry-run --max-batch 0 </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"--max-batch"* ]]
	run fp-kvwrite --dry-run --flush-ms soon </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"--flush-ms"* ]]
	run fp-kvwrite --dry-run --zset @state </dev/null
	[ "$status" -eq 2 ]
	run fp-kvwrite --store 'http://x' </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"invalid store URL"* ]]
	run fp-kvwrite --dry-run --timeout 0 </dev/null
	[ "$status" -eq 2 ] && [[ $output == *"--timeout has no use with --dry-run"* ]]
	run fp-kvwrite --dry-run --flush-ms 0 </dev/null
	[ "$status" -eq 0 ] && [ -z "$output" ]
}

# cut_commit MODE: run the basic fixture through a proxy that breaks the
# first commit (cutproxy.py), with a barrier so that there are two epochs.
cut_commit() {
	start_redis
	bg_start proxy python3 "$FX/cutproxy.py" "$T/proxy.port" "$REDIS_PORT" "$1"
	wait_for test -s "$T/proxy.port"
	frames_of "$FX/basic.jsonl" >"$T/in"
	fp-kvwrite --store "redis://127.0.0.1:$(cat "$T/proxy.port")/0" --timeout 2s "$T/in" 2>"$T/kv.err"
	cat "$T/kv.err"
	diff -u <(printf '%s\n' ev/0/0/1 12:3 ev/1/0/1 5 ev/2/0/1 100) <(rcli hgetall fp:default:offsets)
	[ "$(rcli hget u:1 views)" = 2 ] && [ "$(rcli hget u views)" = 3 ]
}

@test "a commit whose reply is lost but which landed is not sent again" {
	cut_commit reply
	grep -q 'no reply to the commit of 2 keys' "$T/kv.err"
	grep -q 'the commit whose reply was lost had been applied' "$T/kv.err"
	rcli info commandstats | grep -q '^cmdstat_exec:calls=2,'    # two epochs, no resend
}

@test "a commit lost on the way is sent again" {
	cut_commit request
	grep -q 'no reply to the commit of 2 keys' "$T/kv.err"
	grep -q 'the commit whose reply was lost had not been applied; sending it again' "$T/kv.err"
	rcli info commandstats | grep -q '^cmdstat_exec:calls=2,'    # the lost one never arrived
}

@test "--dry-run into a reader that goes away: a quiet stop" {
	gen 5000 100 | frames_of >"$T/in"
	fp-kvwrite --dry-run --max-batch 1 "$T/in" 2>"$T/err" | head -1 >"$T/out"
	[ "${PIPESTATUS[0]}" -eq 0 ]
	[ "$(cat "$T/out")" = MULTI ] && [ ! -s "$T/err" ]
}

# fence: every commit checks that this shard's offsets fields hold what this
# process expects (its origin, then its own last commit).

@test "fence: another writer changes the offsets between two epochs: exit 4, nothing of the epoch written" {
	start_redis
	rcli hset fp:default:offsets ev/0/1/2 7 >/dev/null    # another shard: not checked
	mkfifo "$T/in"
	bg_start kv fp-kvwrite --flush-ms 0 "$T/in"
	exec 7>"$T/in"
	printf '%s\n' '{"@key":"a","@src":["ev",0,0],"v":1}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,1]]}' | frames_of >&7
	wait_for offset_is 1
	rcli hset fp:default:offsets ev/0/0/1 5 ev/0/1/2 9 >/dev/null    # a zombie's late commit
	printf '%s\n' '{"@key":"a","@src":["ev",0,1],"v":2}' '{"@key":"b","@src":["ev",0,2],"v":3}' \
		'{"@ctl":"barrier","@epoch":2,"@pos":[["ev",0,3]]}' | frames_of >&7
	exec 7>&-
	local rc=0
	wait "$BG_PID" || rc=$?
	[ "$rc" -eq 4 ]
	grep -q "fp-kvwrite: another writer changed the stored offsets of shard 0/1 of pipeline 'default': field 'ev/0/0/1' expected 1, found 5; is an old pipeline still running?" "$T/kv.err"
	[ "$(rcli hget a v)" = 1 ] && [ "$(rcli exists b)" = 0 ] && offset_is 5
}

@test "fence: fp-kvwrite alone expects what it read at start; a field that appears is foreign" {
	start_redis
	rcli hset fp:default:offsets ev/0/0/1 3 >/dev/null
	mkfifo "$T/in"
	bg_start kv fp-kvwrite --flush-ms 0 "$T/in"
	exec 7>"$T/in"
	printf '%s\n' '{"@key":"a","@src":["ev",0,3],"v":1}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,4]]}' | frames_of >&7
	wait_for offset_is 4
	rcli hset fp:default:offsets ev/1/0/1 4 >/dev/null   # never seen by it: expected missing
	printf '%s\n' '{"@key":"b","@src":["ev",1,0],"v":1}' \
		'{"@ctl":"barrier","@epoch":2,"@pos":[["ev",0,4],["ev",1,1]]}' | frames_of >&7
	exec 7>&-
	local rc=0
	wait "$BG_PID" || rc=$?
	[ "$rc" -eq 4 ]
	grep -q "field 'ev/1/0/1' expected nothing, found 4; is an old pipeline still running?" "$T/kv.err"
	[ "$(rcli exists b)" = 0 ] && [ "$(rcli hget fp:default:offsets ev/1/0/1)" = 4 ]
}

@test "fence: the origin frame sets the expected offsets; it must match the store at the first commit" {
	start_redis
	rcli hset fp:default:offsets ev/0/0/1 5:2 ev/1/0/1 3 >/dev/null
	origin() { echo "{\"@ctl\":\"origin\",\"@pipeline\":\"default\",\"@shard\":0,\"@shards\":1,\"@pos\":$1}"; }
	# what fp-merge read: the store as it is -> the epoch lands
	{ origin '[["ev",0,"5:2"],["ev",1,"3"]]'; echo '{"@key":"a","@src":["ev",0,5,2],"v":1}'; } |
		frames_of | fp-kvwrite 2>/dev/null
	[ "$(rcli hget a v)" = 1 ] && offset_is 5:3
	# fp-merge read an older position: a zombie committed since -> refused
	run bash -c "{ $(declare -f origin); origin '[[\"ev\",0,\"5:2\"],[\"ev\",1,\"3\"]]'; echo '{\"@key\":\"b\",\"@src\":[\"ev\",0,6],\"v\":1}'; } | fp-cat -r | fp-kvwrite"
	[ "$status" -eq 4 ]
	[[ $output == *"field 'ev/0/0/1' expected 5:2, found 5:3; is an old pipeline still running?"* ]]
	[ "$(rcli exists b)" = 0 ] && offset_is 5:3
	# a field the origin does not list must be missing
	run bash -c "{ $(declare -f origin); origin '[[\"ev\",0,\"5:3\"]]'; echo '{\"@key\":\"b\",\"@src\":[\"ev\",0,6],\"v\":1}'; } | fp-cat -r | fp-kvwrite"
	[ "$status" -eq 4 ]
	[[ $output == *"field 'ev/1/0/1' expected nothing, found 3"* ]]
	[ "$(rcli exists b)" = 0 ]
	# an origin of another shard is a configuration error; a second origin is ignored
	run bash -c "{ $(declare -f origin); origin '[]'; } | fp-cat -r | FP_SHARD=1 FP_SHARDS=2 fp-kvwrite"
	[ "$status" -eq 1 ]
	[[ $output == *"frame 1: origin of shard 0/1, but this fp-kvwrite writes shard 1/2 (FP_SHARD, FP_SHARDS)"* ]]
	run bash -c "{ $(declare -f origin); origin '[]'; } | fp-cat -r | FP_PIPELINE=other fp-kvwrite"
	[ "$status" -eq 1 ]
	[[ $output == *"frame 1: origin of another pipeline than 'other' (FP_PIPELINE)"* ]]
	{ origin '[["ev",0,"5:3"],["ev",1,"3"]]'; origin '[]'; echo '{"@key":"b","@src":["ev",0,6],"v":1}'; } |
		frames_of | fp-kvwrite 2>/dev/null
	[ "$(rcli hget b v)" = 1 ] && offset_is 7
}

@test "fence: the stored offsets went back (Redis lost data) between epochs: exit 4, nothing written" {
	start_redis
	mkfifo "$T/in"
	bg_start kv fp-kvwrite --flush-ms 0 "$T/in"
	exec 7>"$T/in"
	printf '%s\n' '{"@key":"a","@src":["ev",0,4],"v":1}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,5]]}' | frames_of >&7
	wait_for offset_is 5
	rcli hset fp:default:offsets ev/0/0/1 2 >/dev/null
	printf '%s\n' '{"@key":"b","@src":["ev",0,5],"v":1}' | frames_of >&7
	exec 7>&-
	local rc=0
	wait "$BG_PID" || rc=$?
	[ "$rc" -eq 4 ]
	grep -q "the stored offsets of shard 0/1 went back: 'fp:default:offsets' field 'ev/0/0/1' holds 2 but this process expected 5: Redis lost data" "$T/kv.err"
	[ "$(rcli exists b)" = 0 ]
}

# sync frames (fp-merge's coalesced batches): once one is read, a commit
# starts only where no update was read since the last one.

@test "sync: the positions a sync lists are stored with its segment; a bad one is exit 1" {
	printf '%s\n' '{"@ctl":"sync"}' '{"@key":"u:1","@src":["ev",1,3],"v":1}' \
		'{"@ctl":"sync","@pos":[["ev",0,"8"],["ev",1,"4"],["ev",2,"5:2"]]}' | frames_of >"$T/in"
	fp-kvwrite --dry-run "$T/in" | grep offsets >"$T/out"
	echo 'HSET "fp:default:offsets" "ev/1/0/1" "4" "ev/0/0/1" "8" "ev/2/0/1" "5:2"' | diff -u - "$T/out"
	printf '%s\n' '{"@ctl":"sync","@pos":[["ev",0,8]]}' | frames_of >"$T/bad"
	run fp-kvwrite --dry-run "$T/bad"
	[ "$status" -eq 1 ]
	[[ $output == *'frame 1: sync @pos element 1 is not [topic, partition, "O" or "O:I"]'* ]]
}

@test "sync: in the middle of a batch a past timer waits for input; no busy loop" {
	# half a batch, 2 s of nothing, then its sync frame: fp-kvwrite sleeps in
	# poll() meanwhile (a poll with timeout 0 would use the 2 s of CPU)
	printf '%s\n' '{"@ctl":"sync"}' '{"@key":"a","@src":["ev",0,0],"v":1}' | frames_of >"$T/a"
	printf '%s\n' '{"@ctl":"sync","@pos":[["ev",0,"1"]]}' | frames_of >"$T/b"
	{ cat "$T/a"; sleep 2; cat "$T/b"; } |
		/usr/bin/time -f '%U %S' -o "$T/cpu" fp-kvwrite --dry-run --flush-ms 1 >"$T/out"
	grep -qx 'HSET "fp:default:offsets" "ev/0/0/1" "1"' "$T/out"
	cat "$T/cpu"
	awk '{ exit !($1 + $2 < 0.5) }' "$T/cpu"
}

@test "sync: commits start only at sync points, even past --max-batch" {
	printf '%s\n' '{"@ctl":"sync"}' '{"@key":"a","@src":["ev",0,0],"v":1}' \
		'{"@key":"b","@src":["ev",0,1],"v":2}' '{"@ctl":"sync"}' \
		'{"@key":"c","@src":["ev",0,2],"v":3}' '{"@ctl":"sync"}' | frames_of >"$T/in"
	fp-kvwrite --dry-run --max-batch 1 "$T/in" >"$T/out"
	diff -u - "$T/out" <<'OUT'
MULTI
HSET "a" "v" "1"
HSET "b" "v" "2"
HSET "fp:default:offsets" "ev/0/0/1" "2"
INCR "fp:default:fence:0/1"
EXEC
MULTI
HSET "c" "v" "3"
HSET "fp:default:offsets" "ev/0/0/1" "3"
INCR "fp:default:fence:0/1"
EXEC
OUT
	# a barrier inside a batch: the commit waits for the batch's sync
	printf '%s\n' '{"@ctl":"sync"}' '{"@key":"a","@src":["ev",0,0],"v":1}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,5]]}' '{"@key":"b","@src":["ev",0,6],"v":2}' \
		'{"@ctl":"sync"}' | frames_of | fp-kvwrite --dry-run --flush-ms 0 >"$T/out3"
	[ "$(grep -c MULTI "$T/out3")" = 1 ] && grep -q '"ev/0/0/1" "7"' "$T/out3"
	# without sync frames every whole update is a consistent point
	printf '%s\n' '{"@key":"a","@src":["ev",0,0],"v":1}' '{"@key":"b","@src":["ev",0,1],"v":2}' |
		frames_of | fp-kvwrite --dry-run --max-batch 1 >"$T/out2"
	[ "$(grep -c MULTI "$T/out2")" = 2 ]
}

@test "sync: end of input after updates past the last sync: exit 1, nothing of the open part stored" {
	start_redis
	printf '%s\n' '{"@ctl":"sync"}' '{"@key":"a","@src":["ev",0,0],"v":1}' '{"@ctl":"sync"}' \
		'{"@key":"b","@src":["ev",0,1],"v":2}' '{"@key":"c","@src":["ev",0,2],"v":3}' | frames_of >"$T/in"
	run fp-kvwrite --max-batch 1 "$T/in"
	[ "$status" -eq 1 ]
	[[ $output == *"end of input; not committed: the 2 updates read since the last sync frame (fp-merge stopped in the middle of a batch?) and 0 buffered before it; the pipeline replays them from the stored offsets"* ]]
	[ "$(rcli hget a v)" = 1 ] && offset_is 1 && [ "$(rcli exists b c)" = 0 ]
	# nothing buffered is committed, not even what came before the last sync
	rcli flushall >/dev/null
	run fp-kvwrite "$T/in"
	[ "$status" -eq 1 ]
	[[ $output == *"the 2 updates read since the last sync frame"*"and 1 buffered before it"* ]]
	[ "$(rcli exists a b c fp:default:offsets)" = 0 ]
	# a truncated last frame while inconsistent: the same
	head -c -3 "$T/in" >"$T/trunc"
	run fp-kvwrite --max-batch 1 "$T/trunc"
	[ "$status" -eq 1 ]
	[[ $output == *"truncated"*"not committed: the 1 updates read since the last sync frame"* ]]
	[ "$(rcli hget a v)" = 1 ] && offset_is 1 && [ "$(rcli exists b)" = 0 ]
	# a bad frame while inconsistent: the same
	{ cat "$T/in"; printf '%s\n' '{"v":1}' | frames_of; } >"$T/bad"
	rcli flushall >/dev/null
	run fp-kvwrite --max-batch 1 "$T/bad"
	[ "$status" -eq 1 ]
	[[ $output == *"frame 6: update has no @key"*"not committed: the 2 updates read since the last sync frame"* ]]
	[ "$(rcli hget a v)" = 1 ] && offset_is 1 && [ "$(rcli exists b c)" = 0 ]
	# consistent at the end: committed as without sync frames
	rcli flushall >/dev/null
	{ cat "$T/in"; printf '%s\n' '{"@ctl":"sync"}' | frames_of; } | fp-kvwrite 2>/dev/null
	[ "$(rcli hget c v)" = 3 ] && offset_is 3
}

# stat NAME: the value of featpipe_kvwrite_NAME in the last SIGUSR1 dump of
# the fp-kvwrite started as "kv".
stat_is() {
	kill -USR1 "$kv"
	sleep 0.2
	[ "$(grep "^featpipe_kvwrite_$1{" "$T/kv.err" | tail -1 | awk '{print $2}')" = "$2" ]
}

@test "group commit: the next epoch is read while one is in flight, then backpressure; all lands once" {
	start_redis
	gen 200 30 >"$T/all.jsonl"
	part() { sed -n "$1,$2p" "$T/all.jsonl" | frames_of; }
	mkfifo "$T/in"
	bg_start kv fp-kvwrite --max-batch 10 --flush-ms 0 --timeout 30s "$T/in"
	kv=$BG_PID
	exec 7>"$T/in"
	wait_for grep -q 'persistence is off' "$T/kv.err"
	# the first 10 keys make an epoch; Redis is paused before it answers
	kill -STOP "$REDIS_PID"
	part 1 10 >&7
	wait_for stat_is records_in_total 10
	# 25 more: read up to the next epoch's 10th key, then no more
	part 11 35 >&7
	wait_for stat_is records_in_total 20
	stat_is epochs_total 0
	sleep 1
	stat_is records_in_total 20
	kill -CONT "$REDIS_PID"
	part 36 200 >&7
	exec 7>&-
	wait "$kv"
	offset_is 200
	[ "$(rcli hget k29 n)" = 6 ] && [ "$(rcli hget k0 seq)" = 180 ]
	rcli info commandstats | tr -d '\r' | grep -q '^cmdstat_exec:.*,failed_calls=0$'
	part 1 200 >"$T/all"
	dump >"$T/got"
	rcli flushall >/dev/null
	fp-kvwrite "$T/all" 2>/dev/null
	dump >"$T/want"
	diff -u "$T/want" "$T/got"
}

# --cache-keys: what this process committed of a key is remembered as hashes
# of its fields; the key's next commit sends only the fields that changed.
cache_in() {
	printf '%s\n' \
		'{"@key":"u:1","@src":["ev",0,0],"@ttl":'"$1"',"a":1,"b":"x","c":null,"@state":{"@b64":"AA=="}}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,1]]}' \
		'{"@key":"u:1","@src":["ev",0,1],"@ttl":'"$1"',"a":2,"b":"x","c":null,"@state":{"@b64":"AQ=="}}' |
		frames_of
}

@test "--cache-keys: a key written again sends only the fields that changed (--dry-run)" {
	# a TTL of 16 s or more is set as ttl + ttl/8, not again while the
	# cache holds the key (ttl/16): the second write has no EXPIRE
	cache_in 60 | fp-kvwrite --dry-run >"$T/out"
	diff -u - "$T/out" <<'EOF2'
MULTI
HSET "u:1" "a" "1" "b" "x" "@state" "\x00"
HDEL "u:1" "c"
EXPIRE "u:1" "67"
HSET "fp:default:offsets" "ev/0/0/1" "1"
INCR "fp:default:fence:0/1"
EXEC
MULTI
HSET "u:1" "a" "2" "@state" "\x01"
HSET "fp:default:offsets" "ev/0/0/1" "2"
INCR "fp:default:fence:0/1"
EXEC
EOF2
	# off: every field every time, and the TTL
	cache_in 60 | fp-kvwrite --dry-run --cache-keys 0 | sed -n 8,14p >"$T/off"
	diff -u - "$T/off" <<'EOF2'
MULTI
HSET "u:1" "a" "2" "b" "x" "@state" "\x01"
HDEL "u:1" "c"
EXPIRE "u:1" "67"
HSET "fp:default:offsets" "ev/0/0/1" "2"
INCR "fp:default:fence:0/1"
EXEC
EOF2
	# a TTL under 16 s is set as it is with every write, the key whole
	cache_in 15 | fp-kvwrite --dry-run | sed -n 9,11p >"$T/short"
	diff -u - "$T/short" <<'EOF2'
HSET "u:1" "a" "2" "b" "x" "@state" "\x01"
HDEL "u:1" "c"
EXPIRE "u:1" "15"
EOF2
	cache_in 16 | fp-kvwrite --dry-run | grep EXPIRE >"$T/16"
	[ "$(cat "$T/16")" = 'EXPIRE "u:1" "18"' ]
}

@test "--cache-keys: once ttl/16 has passed, the key is written whole with its TTL again" {
	mkfifo "$T/in"
	bg_start kv fp-kvwrite --dry-run "$T/in"
	exec 7>"$T/in"
	printf '%s\n' '{"@key":"u:1","@src":["ev",0,0],"@ttl":16,"a":1,"b":"x"}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,1]]}' | frames_of >&7
	sleep 1.5 # more than 16 s / 16
	printf '%s\n' '{"@key":"u:1","@src":["ev",0,1],"@ttl":16,"a":2,"b":"x"}' | frames_of >&7
	exec 7>&-
	wait "$BG_PID"
	sed -n 7,9p "$T/kv.out" >"$T/second"
	diff -u - "$T/second" <<'EOF2'
MULTI
HSET "u:1" "a" "2" "b" "x"
EXPIRE "u:1" "18"
EOF2
}

@test "--cache-keys: Redis holds the same as with full writes; the fields metrics count both" {
	start_redis
	# a field that never changes beside n and seq
	gen 3000 50 | sed 's/"seq"/"kind": "x", "seq"/' | frames_of >"$T/in"
	FP_STATS_DIR=$T fp-kvwrite -v --max-batch 20 --cache-keys 0 "$T/in" 2>"$T/err0"
	dump >"$T/full"
	rcli flushall >/dev/null
	FP_STATS_DIR=$T fp-kvwrite -v --max-batch 20 "$T/in" 2>"$T/err1"
	dump >"$T/part"
	diff -u "$T/full" "$T/part"
	# 150 epochs of 20 keys: kind is written once per key; n and seq
	# change, and @state is written every time (fp-kvwrite does not
	# compare it: it changes with every event)
	grep -q 'keys=3000 fields=12000 skipped=0 ' "$T/err0"
	grep -q 'keys=3000 fields=9050 skipped=2950 ' "$T/err1"
	grep -q '^featpipe_kvwrite_fields_skipped_total{.*} 2950$' "$T/fp-kvwrite.prom"
	grep -q '^featpipe_kvwrite_fields_written_total{.*} 9050$' "$T/fp-kvwrite.prom"
	# a small cache: fewer keys held, the same result
	rcli flushall >/dev/null
	fp-kvwrite --max-batch 20 --cache-keys 4 "$T/in" 2>/dev/null
	dump >"$T/small"
	diff -u "$T/full" "$T/small"
}

@test "--cache-keys: a key written in part that another client deleted is written whole" {
	start_redis
	mkfifo "$T/in"
	bg_start kv fp-kvwrite --flush-ms 0 "$T/in"
	exec 7>"$T/in"
	printf '%s\n' '{"@key":"u:1","@src":["ev",0,0],"a":1,"b":"x"}' \
		'{"@key":"u:2","@src":["ev",0,1],"a":1,"b":"y"}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["ev",0,2]]}' | frames_of >&7
	wait_for offset_is 2
	rcli del u:1 >/dev/null
	printf '%s\n' '{"@key":"u:1","@src":["ev",0,2],"a":2,"b":"x"}' \
		'{"@key":"u:2","@src":["ev",0,3],"a":2,"b":"y"}' \
		'{"@ctl":"barrier","@epoch":2,"@pos":[["ev",0,4]]}' | frames_of >&7
	exec 7>&-
	wait "$BG_PID"
	grep -q "fp-kvwrite: 1 key of this epoch, known to hold the fields not written, was gone from Redis (deleted by another client? evicted?): writing it whole" "$T/kv.err"
	[ "$(rcli hget u:1 a)" = 2 ] && [ "$(rcli hget u:1 b)" = x ]
	[ "$(rcli hget u:2 a)" = 2 ] && [ "$(rcli hget u:2 b)" = y ]
	offset_is 4
	# the second commit's EXEC is aborted by the check (u:1 gone), the retry's writes both
	rcli info commandstats | tr -d '\r' | grep -q '^cmdstat_exec:calls=3,'
}
