#!/bin/sh
# bench-consume.sh - fp-consume vs kcat reading the same topic to /dev/null.
#
# Starts a private fp-broker, fills PARTS partitions with MSGS messages of
# SIZE bytes (kept under the mock broker's ~5 MiB per partition), then times
#   fp-consume -b B -t bench -o beginning -e -q > /dev/null
#   kcat -C -b B -t bench -o beginning -e -q > /dev/null
# in the same run (hyperfine, RUNS runs each) and prints both rates and the
# ratio.  Both read every partition from the beginning in assign mode.
# Then CPU seconds (user+sys) and peak RSS (GNU time), medians of RUNS
# alternating runs, into /dev/null and through a pipe into cat; OLD=path
# adds another fp-consume binary (e.g. an older build) to that table.
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

# cost NAME SINK CMD...: one run under GNU time; appends "NAME SINK cpu rss_kib"
cost() {
	name=$1 sink=$2
	shift 2
	if [ "$sink" = null ]; then
		/usr/bin/time -f '%U %S %M' -o "$tmp/t" "$@" >/dev/null
	else
		/usr/bin/time -f '%U %S %M' -o "$tmp/t" "$@" | cat >/dev/null
	fi
	read -r u s m <"$tmp/t"
	echo "$name $sink $u $s $m" >>"$tmp/cost"
}
: >"$tmp/cost"
i=0
while [ $i -lt "$RUNS" ]; do
	for sink in null cat; do
		cost fp-consume $sink fp-consume -q -b "$B" -t bench -o beginning -e
		[ -z "${OLD:-}" ] || cost old $sink "$OLD" -q -b "$B" -t bench -o beginning -e
		cost kcat $sink kcat -C -q -b "$B" -t bench -o beginning -e
	done
	i=$((i + 1))
done
python3 - "$tmp/cost" "$n" <<'PY'
import statistics as st, sys
n = int(sys.argv[2])
rows = {}
for line in open(sys.argv[1]):
    name, sink, u, s, m = line.split()
    rows.setdefault((name, sink), []).append((float(u) + float(s), int(m)))
for (name, sink), v in rows.items():
    cpu = st.median(x[0] for x in v)
    print("%-10s %-11s CPU %.2f s (%.0f msg per CPU s)  peak RSS %.0f MiB  (medians of %d)" %
          (name, "> /dev/null" if sink == "null" else "| cat", cpu, n / cpu,
           st.median(x[1] for x in v) / 1024, len(v)))
for sink in ("null", "cat"):
    f = st.median(x[0] for x in rows[("fp-consume", sink)])
    k = st.median(x[0] for x in rows[("kcat", sink)])
    print("CPU ratio fp-consume/kcat (%s): %.2fx" % (sink, f / k))
PY
