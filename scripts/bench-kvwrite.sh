#!/bin/sh
# bench-kvwrite.sh - fp-kvwrite throughput against a private redis-server,
# with redis-benchmark's pipelined HSET on the same server as the ceiling.
#
#   scripts/bench-kvwrite.sh [UPDATES [KEYS]]        (default 1000000 100000)
#   SOURCE=used_car scripts/bench-kvwrite.sh [EVENTS [USERS]]  (default 300000 10000)
#   FP_BIN=build/bin  KVW_ARGS='--max-batch 10000'   (extra fp-kvwrite flags)
#
# Input: UPDATES fp-merge-shaped updates over KEYS keys (uniform random),
# 8 feature fields + @state each; or, with SOURCE=used_car, what fp-merge
# makes of EVENTS events of examples/used_car (gen.py, fp-import --lines per
# topic, fp-merge --no-store: its 12 features and a 2 KB @state, coalesced
# per input batch).  Runs the defaults, the defaults with --cache-keys 0
# (every field every time) and two large-epoch settings; prints records/s
# (input updates), keys written/s (after coalescing), fields written and
# left unchanged, commit latency p50/p99, CPU seconds of fp-kvwrite and of
# redis-server, the ceiling and the ratio records/s : ceiling.
set -eu
SOURCE=${SOURCE:-synthetic}
if [ "$SOURCE" = used_car ]; then
	N=${1:-300000}
	K=${2:-10000}
else
	N=${1:-1000000}
	K=${2:-100000}
fi
BIN=${FP_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
KVW_ARGS=${KVW_ARGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-kvwrite.XXXXXX")
rpid=
cleanup() {
	if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
	--daemonize no >"$tmp/redis.log" 2>&1 &
rpid=$!
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "redis-server did not start" >&2; exit 1; }
	sleep 0.1
done

if [ "$SOURCE" = used_car ]; then
	echo "fp-merge's updates of $N used-car events of $K users..." >&2
	top=$(cd "$(dirname "$0")/.." && pwd)
	python3 "$top/examples/used_car/gen.py" --events "$N" --users "$K" --split "$tmp/data" >/dev/null
	for t in views favourites calls orders; do
		"$BIN/fp-import" -d "$top/examples/used_car/dictionary.fpd" --lines -s "$t" "$tmp/data/$t.txt" 2>/dev/null
	done | "$BIN/fp-merge" -f "$top/examples/used_car/user.fp" --no-store >"$tmp/in.frames"
	rm -rf "$tmp/data"
	N=$("$BIN/fp-cat" "$tmp/in.frames" | grep -vc '"@ctl"')
	echo "$N updates, $(du -m "$tmp/in.frames" | cut -f1) MB" >&2
else
echo "generating $N updates over $K keys..." >&2
python3 - "$N" "$K" >"$tmp/in.jsonl" <<'PY'
import sys, random, json
n, k = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(42)
out = sys.stdout
for i in range(n):
    u = rnd.randrange(k)
    out.write(json.dumps({
        "@key": "u:%d" % u, "@src": ["events", i % 8, i // 8], "@ts": 1700000000000 + i,
        "@in": 1700000000000000 + i, "@ttl": 604800,
        "view_1h": i % 17, "view_7d": i % 301, "spend": round(i * 0.37, 2),
        "price_avg_7d": 1234.5 + (i % 1000) / 8, "price_max": 99999,
        "recent_cars": ["c%d" % (i % 977), "c%d" % (i % 541), "c%d" % (i % 113)],
        "top_brands": [["bmw", 9], ["audi", 4], ["vw", 1]], "last_city": "Paris",
        "@state": {"@b64": "kwEClAMEBQaRB5IICZMKCwyUDQ4PEA=="}},
        separators=(",", ":")))
    out.write("\n")
PY
"$BIN/fp-cat" -r "$tmp/in.jsonl" >"$tmp/in.frames"
rm -f "$tmp/in.jsonl"
fi

# redis_cpu: CPU seconds redis-server has used so far
redis_cpu() {
	redis-cli -p "$port" info cpu | tr -d '\r' |
		awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" {s += $2} END {print s}'
}

# run ARGS...: one fp-kvwrite run on an empty store; sets secs, stats, keys,
# cpu (CPU seconds of fp-kvwrite and of redis-server: on a shared machine
# they say more than the wall clock)
run() {
	redis-cli -p "$port" flushall >/dev/null
	rc0=$(redis_cpu)
	start=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$tmp/time" "$BIN/fp-kvwrite" -v \
		--store "redis://127.0.0.1:$port/0" "$@" "$tmp/in.frames" \
		2>"$tmp/kv.err" || { cat "$tmp/kv.err" >&2; exit 1; }
	end=$(date +%s.%N)
	rc1=$(redis_cpu)
	stats=$(grep 'updates=' "$tmp/kv.err")
	keys=$(redis-cli -p "$port" dbsize)
	cpu=$(awk -v a="$rc0" -v b="$rc1" '{printf "fp-kvwrite %.2f s, redis-server %.2f s", $1 + $2, b - a}' "$tmp/time")
}

# The ceiling: pipelined one-field HSETs on the same server.  The machine may
# be shared, so it is measured before and after the fp-kvwrite runs, and the
# ratios use the mean.
ceiling_run() {
	redis-cli -p "$port" flushall >/dev/null
	c0=$(redis_cpu)
	redis-benchmark -p "$port" -P 64 -t hset -n 1000000 -r 100000 -q 2>/dev/null |
		tr '\r' '\n' | grep 'HSET:' | tail -1 | awk '{print $2}'
	awk -v a="$c0" -v b="$(redis_cpu)" 'BEGIN {printf "%.2f", b - a}' >"$tmp/ceiling.cpu"
}
ceiling1=$(ceiling_run)
ccpu1=$(cat "$tmp/ceiling.cpu")

report() {
python3 - "$N" "$start" "$end" "$ceiling1" "$keys" "$stats" "$cpu" "$*" <<'PY'
import sys, re
n, t0, t1, ceil, dbkeys, stats, cpu, args = sys.argv[1:9]
n, secs, ceil = int(n), float(t1) - float(t0), float(ceil)
st = dict(re.findall(r'(\w+)=([0-9.]+)', stats))
rec = n / secs
print("fp-kvwrite %s: %d updates in %.2fs, %d keys in Redis" % (args or "(defaults)", n, secs, int(dbkeys) - 2))  # less the offsets and the fence key
print("  records/s (input updates):  %10.0f" % rec)
print("  keys written/s (coalesced): %10.0f   (%s key writes in %s epochs)" % (int(st["keys"]) / secs, st["keys"], st["epochs"]))
print("  fields written %s, left unchanged %s" % (st["fields"], st["skipped"]))
print("  commit latency ms: p50 %s  p99 %s  max %s" % (st["commit_ms_p50"], st["commit_ms_p99"], st["commit_ms_max"]))
print("  CPU: %s" % cpu)
PY
}

# shellcheck disable=SC2086
run $KVW_ARGS
r1=$(report $KVW_ARGS)
# Large epochs: more coalescing, at the price of Redis serving nobody else
# for the length of each commit (about 6 us per key: 0.6 s for 100000 keys).
# With the default timer, group commit cuts the epochs; with a 5 s timer the
# whole input is one epoch.
r0= r2= r3=
if [ -z "$KVW_ARGS" ]; then
	run --cache-keys 0
	r0=$(report --cache-keys 0)
	run --max-batch 100000
	r2=$(report --max-batch 100000)
	run --max-batch 100000 --flush-ms 5000
	r3=$(report --max-batch 100000 --flush-ms 5000)
fi
ceiling2=$(ceiling_run)
ccpu2=$(cat "$tmp/ceiling.cpu")
ceiling=$(python3 -c "print(($ceiling1 + $ceiling2) / 2)")
echo "ceiling: redis-benchmark -P 64 -t hset -n 1000000 -r 100000: $ceiling1 HSET/s before, $ceiling2 after, mean $ceiling (redis-server CPU $ccpu1 s, $ccpu2 s)"
for r in "$r1" "$r0" "$r2" "$r3"; do
	[ -n "$r" ] || continue
	printf '%s\n' "$r" | python3 -c "
import sys
c = $ceiling
for line in sys.stdin:
    line = line.rstrip('\n')
    if line.startswith('  records/s'):
        rec = float(line.split()[-1])
        line += '   ratio to the ceiling %.2f (target >= 0.8)' % (rec / c)
    print(line)"
done
