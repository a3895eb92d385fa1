#!/bin/sh
# bench-keyby.sh - frames/s through fp-keyby against cat, same file, same run.
#
#   scripts/bench-keyby.sh [frames]      (default 4000000 frames of 100 bytes)
#
# Measures, best of 3 each, on a file in a private temp dir (page-cached):
#   cat FILE >/dev/null                       (reading alone)
#   cat FILE | cat >/dev/null                 (one pipe hop)
#   fp-keyby -k user -n 4 -- 'cat >/dev/null' < FILE
# and prints frames/s and fp-keyby's ratio to each baseline.
set -eu
FRAMES=${1:-4000000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FP_BIN:-$HERE/build/bin}
[ -x "$BIN/fp-keyby" ] || { echo "bench-keyby: build first (make)" >&2; exit 2; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-keyby.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

# 100-byte frames: 4-byte length + a 96-byte map
# {"user":"uNNNNNNN","action":"view","ts":int64,"pad":"..."}, 100000 users.
python3 - "$FRAMES" "$TMP/frames" <<'PY'
import random, struct, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(1)
frames = []
for i in range(min(n, 1000000)):
    body = (b'\x84\xa4user\xa8' + b'u%07d' % random.randrange(100000) +
            b'\xa6action\xa4view\xa2ts\xd3' + struct.pack('>q', 1700000000000 + i) + b'\xa3pad')
    body += b'\xd9' + bytes([96 - len(body) - 2]) + b'y' * (96 - len(body) - 2)
    assert len(body) == 96
    frames.append(struct.pack('>I', 96) + body)
block = b''.join(frames)
with open(path, 'wb') as f:
    while n > 0:
        k = min(n, len(frames))
        f.write(block[:k * 100])
        n -= k
PY
F="$TMP/frames"
"$BIN/fp-cat" --check "$F" >/dev/null # valid frames; also warms the page cache

best() { # best wall time in seconds of 3 runs of: sh -c "$1"
	b=
	for i in 1 2 3; do
		s=$(date +%s%N)
		sh -c "$1"
		e=$(date +%s%N)
		t=$((e - s))
		if [ -z "$b" ] || [ "$t" -lt "$b" ]; then b=$t; fi
	done
	echo "$b"
}
t_cat=$(best "cat '$F' >/dev/null")
t_pipe=$(best "cat '$F' | cat >/dev/null")
t_kb=$(best "'$BIN/fp-keyby' -k user -n 4 -- 'cat >/dev/null' < '$F'")
python3 - "$FRAMES" "$t_cat" "$t_pipe" "$t_kb" <<'PY'
import sys
n, c, p, k = int(sys.argv[1]), *(int(x) / 1e9 for x in sys.argv[2:])
print(f"frames: {n} x 100 bytes")
print(f"cat FILE >/dev/null          {c:7.3f} s  {n / c / 1e6:7.2f} M frames/s")
print(f"cat FILE | cat >/dev/null    {p:7.3f} s  {n / p / 1e6:7.2f} M frames/s")
print(f"fp-keyby -n 4 'cat'          {k:7.3f} s  {n / k / 1e6:7.2f} M frames/s")
print(f"ratio fp-keyby / cat:        {c / k:.2f}x")
print(f"ratio fp-keyby / cat | cat:  {p / k:.2f}x")
PY
