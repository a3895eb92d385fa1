#!/usr/bin/env bash
# bench-merge.sh - fp-merge throughput and memory per key (issue: >= 500k
# records/s per core, <= 2 KiB per key) for a 10-feature file over RECORDS
# records and USERS users, with --no-store.  Baselines measured in the same
# run over the same input: `cat` and `fp-cat` (decode + print JSON).
#
# usage: scripts/bench-merge.sh [RECORDS [USERS [RUNS]]]   (defaults 1000000 100000 3)
# Uses build/bin (run `make` first) or FP_BIN.
set -euo pipefail
RECORDS=${1:-1000000}
USERS=${2:-100000}
RUNS=${3:-3}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${FP_BIN:-$ROOT/build/bin}"
export PATH="$BIN:$PATH" LC_ALL=C
W="$(mktemp -d "${TMPDIR:-/tmp}/bench-merge.XXXXXX")"
trap 'rm -rf "$W"' EXIT

cat >"$W/bench.fp" <<'EOF'
# 10 features: counts with windows, sum, avg, last-20, top-5, distinct
key     user_id
prefix  "u:"
time    ts
ttl     30d

view_1h      = count()            where action == "view"  over 1h by 5m
view_7d      = count()            where action == "view"  over 7d by 1h
order_1d     = count()            where action == "order" over 1d by 1h
spend        = sum(price)         where action == "order"
price_avg_7d = avg(price)         over 7d by 1h
price_max    = max(price)
recent_cars  = last(car_id, 20)   where action == "view"
top_brands   = topk(brand, 5)     over 7d by 1d
uniq_cars    = distinct(car_id)
last_city    = latest(city)
EOF

# the engine alone: one count() per key
printf 'key user_id\nprefix "u:"\ntime ts\nn = count()\n' >"$W/one.fp"

echo "generating $RECORDS records over $USERS users..." >&2
python3 - "$RECORDS" "$USERS" >"$W/in.jsonl" <<'EOF'
import random, sys
n, users = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(7)
brands = ["b%d" % i for i in range(30)]
cities = ["city%d" % i for i in range(50)]
actions = ["view"] * 8 + ["order", "click"]
t0 = 1_700_000_000_000
step = 7 * 86400 * 1000 // n   # a week of events
out = sys.stdout.write
for i in range(n):
    ts = t0 + i * step - (rnd.randrange(600_000) if rnd.random() < 0.1 else 0)
    out('{"user_id":%d,"action":"%s","car_id":"c%d","brand":"%s","price":%d.%02d,'
        '"city":"%s","ts":%d,"@src":["events",%d,%d],"@ts":%d,"@in":%d}\n'
        % (rnd.randrange(users), rnd.choice(actions), rnd.randrange(5000),
           rnd.choice(brands), rnd.randrange(1000, 60000), rnd.randrange(100),
           rnd.choice(cities), ts, i % 8, i // 8, ts, ts * 1000))
EOF
fp-cat -r "$W/in.jsonl" >"$W/in"
head -n 1 "$W/in.jsonl" | fp-cat -r >"$W/one"
rm -f "$W/in.jsonl"
bytes=$(stat -c %s "$W/in")

# best of RUNS: prints "wall_s cpu_s maxrss_kb"
measure() {
	local best="" i
	for ((i = 0; i < RUNS; i++)); do
		/usr/bin/time -f '%e %U %S %M' -o "$W/time" "$@" <"$W/in" >/dev/null 2>"$W/err" ||
			{ cat "$W/err" >&2; exit 1; }
		read -r e u s m <"$W/time"
		local cpu
		cpu=$(echo "$u + $s" | bc -l)
		if [ -z "$best" ] || (($(echo "$cpu < $(echo "$best" | cut -d' ' -f2)" | bc -l))); then
			best="$e $cpu $m"
		fi
	done
	echo "$best"
}

read -r cat_w cat_c _ <<<"$(measure cat)"
read -r fpcat_w fpcat_c _ <<<"$(measure fp-cat)"
read -r m_w m_c m_rss <<<"$(measure fp-merge -f "$W/bench.fp" --no-store --max-keys $((USERS * 2)) -v)"
stats=$(grep 'records=' "$W/err")
read -r o_w o_c _ <<<"$(measure fp-merge -f "$W/one.fp" --no-store --max-keys $((USERS * 2)))"
keys=$(sed -n 's/.*keys=\([0-9]*\) .*/\1/p' <<<"$stats")
key_bytes=$(sed -n 's/.*key_bytes=\([0-9]*\).*/\1/p' <<<"$stats")
# RSS with one key: what the process costs without keys
/usr/bin/time -f '%M' -o "$W/time1" fp-merge -f "$W/bench.fp" --no-store <"$W/one" >/dev/null
base_rss=$(tail -n 1 "$W/time1")

rate() { echo "$RECORDS / $1" | bc -l | xargs printf '%.0f'; }
echo "input: $RECORDS records, $USERS users, $bytes bytes of frames; best of $RUNS; $(nproc) cores"
printf '%-9s %8s %8s %12s\n' tool wall_s cpu_s records/cpu_s
printf '%-9s %8s %8s %12s\n' cat "$cat_w" "$cat_c" "$(rate "$(echo "$cat_c + 0.001" | bc -l)")"
printf '%-9s %8s %8s %12s\n' fp-cat "$fpcat_w" "$fpcat_c" "$(rate "$(echo "$fpcat_c + 0.001" | bc -l)")"
printf '%-9s %8s %8s %12s\n' fp-merge "$m_w" "$m_c" "$(rate "$(echo "$m_c + 0.001" | bc -l)")"
printf '%-9s %8s %8s %12s   (one count() feature: the engine alone)\n' fp-merge1 "$o_w" "$o_c" \
	"$(rate "$(echo "$o_c + 0.001" | bc -l)")"
echo "fp-merge / fp-cat cpu time: $(echo "$m_c / ($fpcat_c + 0.001)" | bc -l | xargs printf '%.2f')x"
echo "keys in memory: $keys"
echo "memory per key (state + table, counted): $((key_bytes / keys)) bytes"
echo "memory per key (max RSS $m_rss KiB - $base_rss KiB without keys): $(((m_rss - base_rss) * 1024 / keys)) bytes"
