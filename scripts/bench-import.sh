#!/bin/sh
# bench-import.sh - JSON import speed of fp-import against `jq -c .`.
#
#   scripts/bench-import.sh [N]      (default N=1000000 events)
#
# Writes N 10-field JSON events of ~190 bytes, once as JSON lines (for jq)
# and once as fp-consume raw message frames (for fp-import), then runs
# `jq -c .` and `fp-import -d DICT` over them in the same run.  Rates are
# records per CPU second (user+sys of the one process: per core), so other
# load on the machine counts less; wall-clock rates are shown too.
set -eu
N=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FP_BIN:-$ROOT/build/bin}
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-import.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM

python3 - "$N" "$W" <<'PY'
import json, struct, sys
n, w = int(sys.argv[1]), sys.argv[2]
actions = ["view", "click", "order", "share"]
cities = ["Lyon 3e", "Paris 11e", "Berlin-Mitte", "Madrid-Centro", "Roma-Trastevere"]
def mp_str(b):
    return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
def mp_uint(v):
    return b"\xcf" + struct.pack(">Q", v)
with open(w + "/ev.jsonl", "wb") as js, open(w + "/ev.frames", "wb") as fr:
    total = 0
    for i in range(n):
        ev = {"event_id": "evt-2026-11-%09d" % i, "user_id": 100000 + i % 50000,
              "item_id": 900000 + (i * 7) % 100000, "action": actions[i % 4],
              "price": round(10 + (i % 1000) * 1.37, 2), "currency": "EUR",
              "ts": 1700000000000 + i, "device": "android-14" if i % 3 else "ios-17.1",
              "city": cities[i % 5], "ab": i % 2 == 0}
        line = json.dumps(ev, separators=(",", ":")).encode()
        total += len(line)
        js.write(line + b"\n")
        body = (b"\x85" + mp_str(b"@src") + b"\x93" + mp_str(b"events") + b"\x00" + mp_uint(i)
                + mp_str(b"@ts") + mp_uint(1700000000000 + i) + mp_str(b"@in") + mp_uint(1700000000000000 + i)
                + mp_str(b"key") + b"\xc0" + mp_str(b"value") + b"\xc5" + struct.pack(">H", len(line)) + line)
        fr.write(struct.pack(">I", len(body)) + body)
    print("events: %d, mean JSON size %.0f bytes" % (n, total / n))
PY

cat > "$W/ev.dict" <<'D'
source events
  format json
  field event_id string required
  field user_id  int    required
  field item_id  int
  field action   string required
  field price    float
  field currency string
  field ts       time
  field device   string
  field city     string
  field ab       bool
D

# cpu_seconds CMD...: run CMD (stdout to /dev/null), print "user+sys wall"
cpu_seconds() {
	/usr/bin/time -f "%U %S %e" -o "$W/time" "$@" > /dev/null 2> "$W/stderr"
	awk '{ printf "%.3f %.3f\n", $1 + $2, $3 }' "$W/time"
}

set -- $(cpu_seconds jq -c . "$W/ev.jsonl"); jq_cpu=$1 jq_wall=$2
set -- $(cpu_seconds "$BIN/fp-import" -d "$W/ev.dict" "$W/ev.frames"); fi_cpu=$1 fi_wall=$2
set -- $(cpu_seconds "$BIN/fp-import" -d "$W/ev.dict" --lines -s events "$W/ev.jsonl"); li_cpu=$1 li_wall=$2
check=$("$BIN/fp-import" -d "$W/ev.dict" "$W/ev.frames" 2>/dev/null | "$BIN/fp-cat" --check)
echo "fp-import output: $check"

awk -v n="$N" -v jc="$jq_cpu" -v jw="$jq_wall" -v fc="$fi_cpu" -v fw="$fi_wall" \
    -v lc="$li_cpu" -v lw="$li_wall" 'BEGIN {
	printf "%-28s %10s %14s %14s\n", "", "cpu s", "records/cpu-s", "records/wall-s"
	printf "%-28s %10.3f %14.0f %14.0f\n", "jq -c .", jc, n / jc, n / jw
	printf "%-28s %10.3f %14.0f %14.0f\n", "fp-import (frames)", fc, n / fc, n / fw
	printf "%-28s %10.3f %14.0f %14.0f\n", "fp-import --lines", lc, n / lc, n / lw
	printf "ratio fp-import / jq (per cpu second): %.1fx\n", jc / fc
	printf "ratio fp-import --lines / jq (per cpu second): %.1fx\n", jc / lc
}'
