#!/bin/sh
# bench-feat.sh - cost of the feature library per record and memory per key
# for the issue's 10-feature file (RECORDS records over USERS keys), against
# mp_check_frame() on the same records measured in the same run.
#   scripts/bench-feat.sh [RECORDS [USERS]]
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
make -s -j2 build/libfeatpipe.a
mkdir -p build/bench
cc -std=c11 -O2 -g -D_POSIX_C_SOURCE=200809L $(pkg-config --cflags msgpack) \
	-o build/bench/bench_feat tests/unit/bench_feat.c build/libfeatpipe.a \
	$(pkg-config --libs msgpack) -lm
exec build/bench/bench_feat "${1:-1000000}" "${2:-100000}"
