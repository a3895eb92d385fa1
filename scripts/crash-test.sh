#!/usr/bin/env bash
# crash-test.sh: the long version of tests/e2e.bats (issue 8).
#
# While a generator produces keyed events to a private fp-broker, runs
#   fp-consume | fp-import | fp-keyby -n 2 -- 'fp-merge | fp-kvwrite'
# against a private redis-server, kills -9 a random stage (any process of the
# pipeline, a shard's fp-merge, fp-kvwrite or sh included) at a random moment,
# restarts the pipeline as a whole, N times; then lets it run to the end (-e)
# and compares every key's features in Redis with an independent oracle, and
# every stored offset with the end of its partition.
#
# usage: scripts/crash-test.sh [-n crashes] [-u users] [-e events] [-r rate]
#                              [-s seed] [-k max-keys] [-K]
#   -n crashes   crashes to inject (default 50)
#   -u users     distinct keys (default 1000)
#   -e events    events to produce (default 100000; keep them within the
#                broker's ~5 MiB per partition, 4 partitions)
#   -r rate      events per second (default 900: production spans the loop)
#   -s seed      random seed of the generator and of the crashes (default 1)
#   -k max-keys  run fp-merge with --max-keys max-keys --batch 32
#   -K           keep the temporary directory (runs' logs, crash.log)
# Prints runs, crashes injected per stage, keys checked, mismatches; exits 1
# on any mismatch.  Needs the tools built (make), kcat, redis-server, and
# /usr/bin/python3 with the redis module (or E2E_PYTHON).
set -u -o pipefail
crashes=50 users=1000 events=100000 rate=900 seed=1 keep=0 maxkeys=
while getopts n:u:e:r:s:k:Kh o; do
	case $o in
	n) crashes=$OPTARG ;;
	u) users=$OPTARG ;;
	e) events=$OPTARG ;;
	r) rate=$OPTARG ;;
	s) seed=$OPTARG ;;
	k) maxkeys=$OPTARG ;;
	K) keep=1 ;;
	h) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
BATS_TEST_FILENAME=$repo/tests/e2e.bats
. "$repo/tests/helper.bash"
. "$repo/tests/e2e.bash"
unset BATS_TEST_FILENAME
local_teardown() {
	e2e_kill_all
	if ((keep)); then
		cp -r "$T" "$T.kept" && echo "kept: $T.kept"
	fi
}
setup
trap teardown EXIT
trap 'exit 130' INT TERM

RANDOM=$seed
if [[ -n $maxkeys ]]; then
	E2E_MERGE_OPTS="--max-keys $maxkeys --batch 32"
	E2E_UNWIND_S=45 # draining is slow with few keys in memory
fi
t0=$SECONDS
e2e_services none
e2e_produce "$users" "$events" "$rate" "$seed"
e2e_crash_loop "$crashes" 300 2500
t1=$SECONDS
e2e_wait_producer || exit 1
e2e_finish || { echo "the pipeline did not complete"; exit 1; }
t2=$SECONDS
rc=0
e2e_check || rc=1
echo "crash loop ${crashes} crashes: $((t1 - t0)) s; final run: $((t2 - t1)) s; pipelines that did not end alone within $E2E_UNWIND_S s: ${E2E_HUNG:-0}"
sed 's/^/  /' "$T/crash.log"
((${E2E_HUNG:-0} == 0)) || rc=1
exit $rc
