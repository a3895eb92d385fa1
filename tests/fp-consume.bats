#!/usr/bin/env bats
# fp-consume against a throwaway fp-broker.
load helper

# consume ARGS...: fp-consume -q ARGS, frames as JSON lines on stdout.
consume() {
	fp-consume -q "$@" | fp-cat
}

# data FILE: the data frames of a JSON-lines dump, as "topic partition offset value".
data_of() {
	jq -r 'select(has("@src")) | "\(.["@src"][0]) \(.["@src"][1]) \(.["@src"][2]) \(.value["@bin"])"' "$1"
}

# at_least N CMD...: CMD's output has at least N lines (for wait_for).
at_least() {
	local n=$1; shift
	[ "$("$@" 2>/dev/null | wc -l)" -ge "$n" ]
}

# wait_long SECONDS CMD...: like wait_for, for slow group rebalances.
wait_long() {
	local i n=$(($1 * 10)); shift
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "timed out waiting for: $*" >&2
	return 1
}

barriers_in() {
	fp-cat "$1" | grep barrier
}

# seqp TOPIC PARTITION N: kcat produces 1..N to one partition.
seqp() {
	seq "$3" | kcat -P -b "$BROKER" -t "$1" -p "$2"
}

@test "kcat-produced messages are consumed exactly once, with their offsets and a final barrier" {
	start_broker --topic t:3
	for p in 0 1 2; do seqp t $p 10; done
	consume -t t -o beginning -e > "$T/out"
	data_of "$T/out" | sort -k2,2n -k3,3n > "$T/got"
	for p in 0 1 2; do for o in $(seq 0 9); do echo "t $p $o $((o + 1))"; done; done > "$T/want"
	diff -u "$T/want" "$T/got"
	[ "$(tail -1 "$T/out" | jq -c '{c:.["@ctl"],p:.["@pos"]}')" = '{"c":"barrier","p":[["t",0,10],["t",1,10],["t",2,10]]}' ]
}

@test "a raw message frame carries key, value, headers, @ts and @in" {
	start_broker --topic h:1
	printf 'k1:v1\n' | kcat -P -b "$BROKER" -t h -K : -H a=1 -H b=two
	t0=$(($(date +%s) * 1000000))
	consume -t h -e > "$T/out"
	head -1 "$T/out" | jq -c 'del(.["@ts"], .["@in"])' > "$T/got"
	echo '{"@src":["h",0,0],"key":{"@bin":"k1"},"value":{"@bin":"v1"},"headers":[["a",{"@bin":"1"}],["b",{"@bin":"two"}]]}' > "$T/want"
	diff -u "$T/want" "$T/got"
	head -1 "$T/out" | jq -e --argjson t0 "$t0" '(.["@ts"] | type) == "number" and .["@in"] >= $t0 - 5000000 and .["@in"] < $t0 + 60000000'
}

@test "frames encode every size of key and value, and nil, as msgpack's smallest form" {
	start_broker --topic z:1
	/usr/bin/python3 - "$BROKER" <<'PY'
import sys
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': sys.argv[1]})
for n in (0, 31, 32, 255, 256, 65535, 65536, 70000):
    p.produce('z', key=b'k' * n, value=b'v' * n, partition=0)
p.produce('z', key=None, value=None, partition=0)
p.flush(10)
PY
	fp-consume -q -t z -e > "$T/out"
	fp-cat --check < "$T/out"
	fp-cat "$T/out" | jq -r 'select(has("@src")) | [.["@src"][2], (.key | if . == null then "nil" else .["@bin"] | length end), (.value | if . == null then "nil" else .["@bin"] | length end)] | @tsv' > "$T/got"
	printf '0\t0\t0\n1\t31\t31\n2\t32\t32\n3\t255\t255\n4\t256\t256\n5\t65535\t65535\n6\t65536\t65536\n7\t70000\t70000\n8\tnil\tnil\n' > "$T/want"
	diff -u "$T/want" "$T/got"
	# bin 8, 16 and 32 headers: c4 for 255, c5 for 256, c6 for 65536
	od -An -tx1 -v "$T/out" | tr -d ' \n' > "$T/hex"
	grep -q "a3key c4ff" <(sed 's/a36b6579/a3key /g' "$T/hex")
	grep -q "a3key c50100" <(sed 's/a36b6579/a3key /g' "$T/hex")
	grep -q "a3key c600010000" <(sed 's/a36b6579/a3key /g' "$T/hex")
}

@test "each -o form starts where it says; e@ stops before a timestamp" {
	start_broker --topic o:1
	for i in $(seq 0 9); do
		printf '{"@src":["x",0,%d],"@ts":%d,"key":null,"value":{"@bin":"m%d"}}\n' $i $(((i + 1) * 1000)) $i
	done | fp-cat -r | fp-produce -q -t o
	offs() { fp-consume -q -t o -e -f '%o ' "$@"; echo; }
	[ "$(offs -o beginning)" = "0 1 2 3 4 5 6 7 8 9 " ]
	[ "$(offs)" = "0 1 2 3 4 5 6 7 8 9 " ]
	[ "$(offs -o end)" = "" ]
	[ "$(offs -o 7)" = "7 8 9 " ]
	[ "$(offs -o -2)" = "8 9 " ]
	[ "$(offs -o -20)" = "0 1 2 3 4 5 6 7 8 9 " ]
	[ "$(offs -o e@4500)" = "0 1 2 3 " ]
	[ "$(offs -o 2 -o e@4000)" = "2 " ]
	# fp-broker cannot look up offsets by time: s@ starts at the end there.
	[ "$(offs -o s@99999999999999)" = "" ]
	# -o end: the barrier still says where the partition stands.
	consume -t o -o end -e > "$T/out"
	[ "$(jq -c '.["@pos"]' "$T/out")" = '[["o",0,10]]' ]
	run fp-consume -t o -o stored -e
	[ "$status" -eq 2 ] && [[ $output == *"-o stored needs a group (-G)"* ]]
}

@test "barriers come every --barrier-ms and list every partition, even empty ones" {
	start_broker --topic b:3
	seqp b 1 4
	bg_start c fp-consume -q -t b --barrier-ms 100
	wait_for at_least 3 barriers_in "$T/c.out"
	stop_pid "$BG_PID"
	fp-cat "$T/c.out" > "$T/out"
	[ "$(grep -c '"@src"' "$T/out")" -eq 4 ]
	# every barrier names every partition; once the data is out, where it ends
	[ "$(jq -c 'select(.["@ctl"]) | [.["@pos"][] | .[0:2]]' "$T/out" | sort -u)" = '[["b",0],["b",1],["b",2]]' ]
	[ "$(jq -c 'select(.["@ctl"]) | .["@pos"]' "$T/out" | tail -1)" = '[["b",0,0],["b",1,4],["b",2,0]]' ]
	[ "$(jq -r 'select(.["@ctl"]) | .["@epoch"]' "$T/out" | head -3 | tr '\n' ' ')" = "1 2 3 " ]
}

@test "several -t are unioned into one stream" {
	start_broker --topic a:1 --topic b:2
	seqp a 0 3
	seqp b 1 2
	consume -t a -t b -e > "$T/out"
	data_of "$T/out" | sort > "$T/got"
	printf '%s\n' "a 0 0 1" "a 0 1 2" "a 0 2 3" "b 1 0 1" "b 1 1 2" > "$T/want"
	diff -u "$T/want" "$T/got"
	[ "$(tail -1 "$T/out" | jq -c '.["@pos"]')" = '[["a",0,3],["b",0,0],["b",1,2]]' ]
}

@test "-c stops after count messages with a final barrier" {
	start_broker --topic c:2
	seqp c 0 10
	consume -t c -c 5 > "$T/out"
	[ "$(grep -c '"@src"' "$T/out")" -eq 5 ]
	[ "$(tail -1 "$T/out" | jq -c '.["@pos"]')" = '[["c",0,5],["c",1,0]]' ]
}

@test "-f and -J print kcat's formats" {
	start_broker --topic f:1
	printf 'k:v\n' | kcat -P -b "$BROKER" -t f -K : -H h=1 -H z
	run fp-consume -q -t f -e -f 'Topic %t [%p] at offset %o: key %k (%K): %s (%S) %h\n'
	[ "$status" -eq 0 ] && [ "$output" = "Topic f [0] at offset 0: key k (1): v (1) h=1,z=NULL" ]
	# the same as kcat
	[ "$(fp-consume -q -t f -e -J)" = "$(kcat -C -b "$BROKER" -t f -e -q -J)" ]
	fp-consume -q -t f -e -J | jq -c 'del(.ts)' > "$T/got"
	echo '{"topic":"f","partition":0,"offset":0,"tstype":"create","broker":1,"headers":["h","1","z",null],"key":"k","payload":"v"}' > "$T/want"
	diff -u "$T/want" "$T/got"
}

@test "an out-of-range offset stops with exit 4 unless a reset policy is set" {
	start_broker --topic r:1
	seqp r 0 3
	run fp-consume -q -t r -o 100 -e
	[ "$status" -eq 4 ]
	[[ $output == *"'r' [0]: offset 100 is out of range (the broker keeps 0..3)"* ]]
	echo 'auto.offset.reset=earliest' > "$T/kafka.conf"
	[ "$(fp-consume -q -t r -o 100 -e -F "$T/kafka.conf" -f '%s ')" = "1 2 3 " ]
}

@test "group mode: -e exits at the end, and the next run resumes at the committed offsets" {
	# fp-broker makes a rejoin wait for the last member's session timeout.
	start_broker --topic g:2
	seqp g 0 3
	seqp g 1 2
	[ "$(fp-consume -q -t g -G grp -X session.timeout.ms=6000 -e -f '%p/%o ' | tr ' ' '\n' | sort | tr '\n' ' ')" = "0/0 0/1 0/2 1/0 1/1 " ]
	seqp g 1 2
	[ "$(fp-consume -q -t g -G grp -X session.timeout.ms=6000 -e -f '%p/%o ')" = "1/2 1/3 " ]
}

@test "group mode: two consumers split the partitions between them" {
	start_broker --topic s:4
	local x=(-X heartbeat.interval.ms=300 -X session.timeout.ms=6000)
	bg_start c1 fp-consume -t s -G split "${x[@]}" -f '%p %o\n'
	bg_start c2 fp-consume -t s -G split "${x[@]}" -f '%p %o\n'
	wait_long 30 grep -q 'assigned 2 partition(s), 2 in all' "$T/c1.err"
	wait_long 30 grep -q 'assigned 2 partition(s), 2 in all' "$T/c2.err"
	for p in 0 1 2 3; do seqp s $p 5; done
	wait_for at_least 20 cat "$T/c1.out" "$T/c2.out"
	sleep 0.5
	[ "$(cat "$T/c1.out" "$T/c2.out" | sort | uniq | wc -l)" -eq 20 ]
	[ "$(cat "$T/c1.out" "$T/c2.out" | wc -l)" -eq 20 ]
	[ "$(cut -d' ' -f1 "$T/c1.out" | sort -u | wc -l)" -eq 2 ]
	[ "$(cut -d' ' -f1 "$T/c2.out" | sort -u | wc -l)" -eq 2 ]
}

@test "broker down for 10 s then up: nothing lost, nothing duplicated (assign mode)" {
	start_broker --topic d:2
	bg_start c fp-consume -q -t d -f '%p %o %s\n'
	C=$BG_PID
	seq 1 200 | fp-produce -q --lines -t d
	wait_for at_least 200 cat "$T/c.out"
	broker_ctl 'down 1'
	wait_for grep -q 'broker 1 down' "$T/broker.err"
	seq 201 400 | fp-produce -q --lines -t d &
	P=$!
	sleep 10
	broker_ctl 'up 1'
	wait "$P"
	wait_for at_least 400 cat "$T/c.out"
	sleep 0.5
	stop_pid "$C"
	[ "$(wc -l < "$T/c.out")" -eq 400 ]
	[ "$(cut -d' ' -f3 "$T/c.out" | sort -n | uniq | wc -l)" -eq 400 ]
	[ "$(cut -d' ' -f1,2 "$T/c.out" | sort -u | wc -l)" -eq 400 ]
}

@test "usage errors exit 2 with a reason" {
	run fp-consume -b 127.0.0.1:1 -f x
	[ "$status" -eq 2 ] && [[ $output == *"no topic given"* ]]
	run fp-consume -t x
	[ "$status" -eq 2 ] && [[ $output == *"no brokers given"* ]]
	run fp-consume -b 127.0.0.1:1 -t x -o yesterday
	[ "$status" -eq 2 ] && [[ $output == *"bad offset 'yesterday'"* ]]
	run fp-consume -b 127.0.0.1:1 -t x -f '%z'
	[ "$status" -eq 2 ] && [[ $output == *"unknown format token '%z'"* ]]
	run fp-consume -b 127.0.0.1:1 -t x -X no.such.prop=1 -f x
	[ "$status" -eq 2 ] && [[ $output == *"No such configuration property"* ]]
	run fp-consume -b 127.0.0.1:1 -t x -F "$T/missing.conf" -f x
	[ "$status" -eq 2 ] && [[ $output == *"unable to open"* ]]
	printf 'fetch.wait.max.ms=10\nbogus\n' > "$T/bad.conf"
	run fp-consume -b 127.0.0.1:1 -t x -F "$T/bad.conf" -f x
	[ "$status" -eq 2 ] && [[ $output == *"bad.conf:2: expected prop=val"* ]]
}

@test "man page examples" {
	start_broker --topic views:2
	printf 'u1:a\nu2:b\nu3:c\n' | kcat -P -b "$BROKER" -t views -p 1 -K :
	run fp-consume -t views -o -2 -e -f '%t [%p] %o: %k %s\n'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "views [1] 1: u2 b" ] && [ "${lines[1]}" = "views [1] 2: u3 c" ]
	fp-consume -b "$BROKER" -t views -e | fp-cat > "$T/out"
	[ "$(tail -1 "$T/out")" = '{"@ctl":"barrier","@epoch":1,"@pos":[["views",0,0],["views",1,3]]}' ]
}

@test "a reader that goes away is a quiet stop; a message over FP_MAX_FRAME is exit 1" {
	start_broker --topic q:1
	seq 1 1000 | fp-produce -q --lines -t q
	run bash -c 'set -o pipefail; fp-consume -q -t q | head -c 100 > /dev/null'
	[ "$status" -eq 0 ] && [ "$output" = "" ]
	head -c 300 /dev/zero | tr '\0' x | fp-produce -q --lines -t q
	run env FP_MAX_FRAME=200 fp-consume -q -t q -o 1000 -e -c 1
	[ "$status" -eq 1 ] && [[ $output == *"'q' [0] offset 1000: the message is larger than the maximum frame size 200"* ]]
}

@test "a stalled reader stops the fetching: memory stays bounded, nothing is lost" {
	start_broker --topic bp:8
	python3 -c "
import sys
for i in range(12000): sys.stdout.write('%011d %s\n' % (i, 'x' * 188))" > "$T/data"
	for p in $(seq 0 7); do fp-produce -q --lines -t bp -p $p < "$T/data"; done
	mkfifo "$T/pipe"
	# 8 x 12000 messages (~19 MB of values) behind a reader that waits 3 s
	fp-consume -q -t bp -e -X queued.max.messages.kbytes=1024 -f '%s\n' > "$T/pipe" &
	C=$!
	FP_PIDS+=("$C")
	exec 5< "$T/pipe"
	sleep 3
	rss=$(ps -o rss= -p "$C")
	[ "$rss" -lt 40000 ] || { echo "rss $rss KiB"; return 1; }
	[ "$(wc -l <&5)" -eq 96000 ]
	exec 5<&-
	wait "$C"
}

# fill TOPIC PARTS N: N messages of 200 bytes in each of PARTS partitions.
fill() {
	python3 -c "
import sys
for i in range($3): sys.stdout.write('%011d %s\n' % (i, 'x' * 188))" > "$T/data"
	for p in $(seq 0 $(($2 - 1))); do fp-produce -q --lines -t "$1" -p $p < "$T/data"; done
}

@test "prefetch defaults are small; -F and -X override them" {
	start_broker --topic d:1
	seqp d 0 3
	fp-consume -t d -e -X debug=conf -f '%o\n' > /dev/null 2> "$T/err"
	grep -q 'queued.max.messages.kbytes = 8192$' "$T/err"
	grep -q 'queued.min.messages = 100000$' "$T/err"
	grep -q 'fetch.max.bytes = 8388608$' "$T/err"
	echo 'queued.max.messages.kbytes = 1024' > "$T/conf"
	fp-consume -t d -e -F "$T/conf" -X queued.min.messages=5000 -X fetch.max.bytes=2000000 \
		-X debug=conf -f '%o\n' > /dev/null 2> "$T/err"
	grep -q 'queued.max.messages.kbytes = 1024$' "$T/err"
	grep -q 'queued.min.messages = 5000$' "$T/err"
	grep -q 'fetch.max.bytes = 2000000$' "$T/err"
	# a larger message.max.bytes raises the fetch size librdkafka requires
	run fp-consume -t d -e -X message.max.bytes=10000000 -X debug=conf -f '%o\n'
	[ "$status" -eq 0 ]
	[[ "$output" == *'fetch.max.bytes = 10000000'* ]]
}

@test "a small fetch queue is refilled as it drains, not a second later" {
	start_broker --topic r:4
	fill r 4 12000
	# each fetch brings at most 1 MB: about 10 refills, each of which
	# librdkafka 2.0.2 alone would start only when its thread next wakes
	t0=$(date +%s%N)
	n=$(FP_STATS_DIR=$T fp-consume -q -t r -e -X queued.max.messages.kbytes=64 \
		-X fetch.max.bytes=1048576 -f '%o\n' | wc -l)
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$n" -eq 48000 ]
	[ "$ms" -lt 4000 ] || { echo "took $ms ms"; return 1; }
	grep -Eq '^featpipe_consume_fetch_wakes_total\{[^}]*\} [1-9]' "$T/fp-consume.prom"
}

@test "standard output gets a 1 MiB pipe where the system allows it" {
	[ "$(cat /proc/sys/fs/pipe-max-size)" -ge 1048576 ] || skip "pipe-max-size is below 1 MiB"
	start_broker --topic s:1
	seqp s 0 3
	size=$(fp-consume -q -t s -e | /usr/bin/python3 -c '
import fcntl, sys
sys.stdin.buffer.read()
print(fcntl.fcntl(0, 1032))  # F_GETPIPE_SZ, once the writer is done')
	[ "$size" -eq 1048576 ]
}

@test "with the default prefetch, a stalled reader keeps the consumer small" {
	start_broker --topic bq:8
	fill bq 8 20000
	mkfifo "$T/pipe"
	# 8 x 20000 messages (~32 MB of values) behind a reader that waits 3 s;
	# with the earlier defaults (128 MiB) it all came in: 87 MB resident
	fp-consume -q -t bq -e > "$T/pipe" &
	C=$!
	FP_PIDS+=("$C")
	exec 5< "$T/pipe"
	sleep 3
	rss=$(ps -o rss= -p "$C")
	max=50000
	case $FP_BIN in *build-san*) max=100000 ;; esac # ASan keeps freed memory a while
	[ "$rss" -lt "$max" ] || { echo "rss $rss KiB"; return 1; }
	[ "$(fp-cat <&5 | grep -vc barrier)" -eq 160000 ]
	exec 5<&-
	wait "$C"
}

# committed GROUP TOPIC NPARTS: the group's committed offsets, "p:o" per line
# (-1001 when none), read by a client that does not join the group.
committed() {
	/usr/bin/python3 - "$BROKER" "$@" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
b, g, t, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({'bootstrap.servers': b, 'group.id': g, 'enable.auto.commit': False})
for tp in c.committed([TopicPartition(t, p) for p in range(n)], timeout=10):
    print("%d:%d" % (tp.partition, tp.offset))
c.close()
PY
}

committed_is() {
	[ "$(committed "$1" "$2" "$3" | tr '\n' ' ')" = "$4" ]
}

@test "--store resumes each partition at the smallest stored position over the shards" {
	start_broker --topic r:2
	start_redis
	seqp r 0 10
	seqp r 1 10
	# Shard 1 is behind on partition 0; "3:2" = offset 3 only partly applied: re-read it.
	rcli hset fp:default:offsets r/0/0/2 7 r/0/1/2 4 r/1/0/2 3:2 r/1/1/2 9 >/dev/null
	run fp-consume -t r --store - -e -f '%p/%o '
	[ "$status" -eq 0 ]
	[ "$(echo "${lines[@]}" | grep -o '[01]/[0-9]*' | sort -t/ -k1,1n -k2,2n | tr '\n' ' ')" = "0/4 0/5 0/6 0/7 0/8 0/9 1/3 1/4 1/5 1/6 1/7 1/8 1/9 " ]
	[[ $output == *"resuming 2 of 2 partition(s) at their stored positions (pipeline 'default')"* ]]
	# FP_PIPELINE picks the hash; --store URL names the store; barriers start there.
	rcli hset fp:p1:offsets r/0/0/1 9 r/1/0/1 10 >/dev/null
	FP_PIPELINE=p1 fp-consume -q -t r --store "$REDIS_URL" -e | fp-cat > "$T/out"
	[ "$(data_of "$T/out")" = "r 0 9 10" ]
	[ "$(tail -1 "$T/out" | jq -c '.["@pos"]')" = '[["r",0,10],["r",1,10]]' ]
}

@test "--store: a partition without a position for every shard starts at -o" {
	start_broker --topic f:2
	start_redis
	seqp f 0 10
	seqp f 1 10
	rcli hset fp:default:offsets f/0/0/2 7 f/1/0/2 5 f/1/1/2 6 >/dev/null
	run fp-consume -t f --store - -o 8 -e -f '%p/%o '
	[ "$status" -eq 0 ]
	[[ $output == *"resuming 1 of 2 partition(s)"* ]]
	[ "$(echo "${lines[@]}" | grep -o '[01]/[0-9]*' | sort -t/ -k1,1n -k2,2n | tr '\n' ' ')" = "0/8 0/9 1/5 1/6 1/7 1/8 1/9 " ]
	# Nothing stored at all: -o for every partition.
	rcli del fp:default:offsets >/dev/null
	[ "$(fp-consume -q -t f --store - -o -1 -e -f "%p/%o\n" | sort | tr "\n" " ")" = "0/9 1/9 " ]
}

@test "--store refuses positions stored for several shard counts (exit 2)" {
	start_broker --topic l:1
	start_redis
	rcli hset fp:default:offsets l/0/0/2 1 l/0/1/2 1 l/0/0/4 1 >/dev/null
	run fp-consume -t l --store - -e -f '%o '
	[ "$status" -eq 2 ]
	[[ $output == *"fp-consume: store: 'fp:default:offsets' holds positions for 2 shard layouts (2 and 4 shards): re-sharding a pipeline is not supported"* ]]
}

@test "--store: Redis unreachable or failing is exit 4" {
	start_broker --topic u:1
	run fp-consume -t u --store "redis://127.0.0.1:$(free_port)" -e -f '%o '
	[ "$status" -eq 4 ]
	[[ $output == *"fp-consume: store: "* ]]
	start_redis
	rcli set fp:default:offsets x >/dev/null
	run fp-consume -t u --store - -e -f '%o '
	[ "$status" -eq 4 ]
	[[ $output == *"WRONGTYPE"* ]]
}

@test "--store usage errors" {
	start_broker --topic e:1
	run env -u FP_REDIS fp-consume -t e --store - -f '%o '
	[ "$status" -eq 2 ] && [[ $output == *"--store -: FP_REDIS is not set"* ]]
	run fp-consume -t e --store nosuch://x -f '%o '
	[ "$status" -eq 2 ] && [[ $output == *"--store: invalid store URL 'nosuch://x'"* ]]
	run fp-consume -t e -G g --commit-ms 100 -f '%o '
	[ "$status" -eq 2 ] && [[ $output == *"--commit-ms needs --store and a group (-G)"* ]]
	run fp-consume -t e -G g --store redis://127.0.0.1:1 -X enable.auto.commit=true -f '%o '
	[ "$status" -eq 2 ] && [[ $output == *"enable.auto.commit must stay false"* ]]
}

@test "--store with a group: the group's commits follow the store, not the read position" {
	start_broker --topic c:2
	start_redis
	seqp c 0 10
	seqp c 1 10
	rcli hset fp:default:offsets c/0/0/1 3 c/1/0/1 5 >/dev/null
	local x=(-X heartbeat.interval.ms=300 -X session.timeout.ms=6000)
	bg_start c fp-consume -t c -G cg --store - --commit-ms 200 "${x[@]}" -f '%p %o\n'
	C=$BG_PID
	wait_long 30 at_least 12 cat "$T/c.out"
	wait_long 10 committed_is cg c 2 "0:3 1:5 "
	sleep 1
	committed_is cg c 2 "0:3 1:5 "   # read up to 10 in both: never committed
	rcli hset fp:default:offsets c/0/0/1 10 >/dev/null
	wait_long 10 committed_is cg c 2 "0:10 1:5 "
	rcli hset fp:default:offsets c/1/0/1 8 >/dev/null
	stop_pid "$C"
	committed_is cg c 2 "0:10 1:8 "   # committed again at exit
	# The store, not the group's commit, says where to resume.
	rcli hset fp:default:offsets c/1/0/1 6 >/dev/null
	[ "$(fp-consume -q -t c -G cg --store - "${x[@]}" -e -f '%p/%o ')" = "1/6 1/7 1/8 1/9 " ]
	committed_is cg c 2 "0:10 1:6 "
	# Partition 0 loses its stored position: -o stored falls back to the group's
	# commit (10, the end), the default -o beginning to offset 0.
	rcli hdel fp:default:offsets c/0/0/1 >/dev/null
	[ "$(fp-consume -q -t c -G cg --store - -o stored "${x[@]}" -e -f '%p/%o ')" = "1/6 1/7 1/8 1/9 " ]
	[ "$(fp-consume -q -t c -G cg --store - "${x[@]}" -e -f '%p/%o\n' | grep -c '^0/')" -eq 10 ]
}

@test "--store with a group: Redis lost mid-run stops the consumer with exit 4" {
	start_broker --topic k:1
	start_redis
	bg_start c fp-consume -t k -G kg --store - --commit-ms 200 -X session.timeout.ms=6000 -f '%o\n'
	C=$BG_PID
	wait_long 30 grep -q 'assigned 1 partition' "$T/c.err"
	stop_pid "$REDIS_PID"
	wait_for bash -c "! kill -0 $C"
	run wait "$C"
	[ "$status" -eq 4 ]
	grep -q "fp-consume: store: " "$T/c.err"
}

@test "man page example: resume a two-shard pipeline from its store" {
	start_broker --topic views:1
	start_redis
	seqp views 0 125
	rcli hset fp:shop:offsets views/0/0/2 120 views/0/1/2 118:3 >/dev/null
	FP_PIPELINE=shop fp-consume -t views -G features --store - -e -f '%p %o\n' > "$T/out" 2> "$T/err"
	grep -qx "fp-consume: resuming 1 of 1 partition(s) at their stored positions (pipeline 'shop')" "$T/err"
	[ "$(head -2 "$T/out" | tr '\n' ' ')" = "0 118 0 119 " ]
	[ "$(wc -l < "$T/out")" -eq 7 ]
}
