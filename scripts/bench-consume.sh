#!/bin/sh
# bench-consume.sh - fp-consume vs kcat reading the same topic to /dev/null.
#
# Starts a private fp-broker, fills PARTS partitions with MSGS messages of
# SIZE bytes (kept under the mock broker's ~5 MiB per partition), then times
#   fp-consume -b B -t bench -o beginning -e -q > /dev/null
#   kcat -C -b B -t bench -o beginning -e -q > /dev/null
# in the same run (hyperfine, RUNS runs each) and prints both rates and the
# ratio.  Both read every partition from the beginning in assign mode.
set -eu
PARTS=${PARTS:-16}
SIZE=${SIZE:-200}
PER=${PER:-$((4000000 / (SIZE + 70)))}   # messages per partition
MSGS=$((PARTS * PER))
RUNS=${RUNS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FP_BIN:-$here/build/bin}
PATH=$BIN:$PATH
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

fp-broker -q --topic bench:"$PARTS" --bootstrap-file "$tmp/addr" >/dev/null &
pid=$!
i=0
while [ ! -s "$tmp/addr" ]; do i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done
B=$(cat "$tmp/addr")

python3 -c "
import sys
line = ('x' * ($SIZE - 12))
w = sys.stdout.write
for i in range($PER):
    w('%011d %s\n' % (i, line))
" > "$tmp/data"
p=0
while [ $p -lt "$PARTS" ]; do
	fp-produce -q --lines -b "$B" -t bench -p $p -X linger.ms=50 < "$tmp/data"
	p=$((p + 1))
done
n=$(fp-consume -q -b "$B" -t bench -o beginning -e -f '\n' | wc -l)
k=$(kcat -C -q -b "$B" -t bench -o beginning -e | wc -l)
echo "topic bench: $PARTS partitions, $n messages of $SIZE bytes (kcat reads $k)"
[ "$n" -eq "$MSGS" ] && [ "$k" -eq "$MSGS" ] || { echo "message counts differ" >&2; exit 1; }

# hyperfine sends each command's output to /dev/null.
hyperfine -N -w 1 -r "$RUNS" --export-json "$tmp/h.json" \
	-n fp-consume "fp-consume -q -b $B -t bench -o beginning -e" \
	-n kcat "kcat -C -q -b $B -t bench -o beginning -e" >&2
python3 - "$tmp/h.json" "$n" "$SIZE" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
n, size = int(sys.argv[2]), int(sys.argv[3])
for name in ("fp-consume", "kcat"):
    m = r[name]["median"]
    print("%-10s median %.3f s  %9.0f msg/s  %6.1f MB/s" % (name, m, n / m, n * size / m / 1e6))
print("ratio fp-consume/kcat (throughput): %.2fx" % (r["kcat"]["median"] / r["fp-consume"]["median"]))
PY
