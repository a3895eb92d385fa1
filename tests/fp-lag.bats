#!/usr/bin/env bats
# fp-lag against fp-broker: a group that consumed then stopped (its offsets
# are committed directly, without a group join, to keep the suite fast).
load helper

PY=/usr/bin/python3 # the Debian python3 that has python3-confluent-kafka

# produce TOPIC PARTITION COUNT AGE_SECONDS: COUNT messages whose timestamps
# are AGE_SECONDS old (1 ms apart).
produce() {
	"$PY" - "$BROKER" "$@" <<'EOF'
import sys, time
from confluent_kafka import Producer
b, topic, part, n, age = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
p = Producer({'bootstrap.servers': b, 'linger.ms': 5})
ts = int(time.time() * 1000 - age * 1000)
for i in range(n):
    p.produce(topic, value=b'v%d' % i, partition=part, timestamp=ts + i)
p.flush(10)
EOF
}

# commit GROUP TOPIC PARTITION OFFSET: what a consumer of GROUP commits.
commit() {
	"$PY" - "$BROKER" "$@" <<'EOF'
import sys
from confluent_kafka import Consumer, TopicPartition
b, group, topic, part, off = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = Consumer({'bootstrap.servers': b, 'group.id': group, 'enable.auto.commit': False})
c.commit(offsets=[TopicPartition(topic, part, off)], asynchronous=False)
c.close()
EOF
}

# The group "g" read 40 of 100 messages one minute old, then stopped.
consumed_then_stopped() {
	start_broker --topic t:2
	produce t 0 100 60
	commit g t 0 40
}

# field JSON-LINES KEY: the values of KEY in the partition-0 lines.
p0() {
	jq -c "select(.partition == 0 and .event == null) | .$2" "$1"
}

@test "usage errors exit 2 and say why" {
	run fp-lag -b 127.0.0.1:1
	[ "$status" -eq 2 ] && [[ $output == *"no group given (-G)"* ]]
	run fp-lag -G g
	[ "$status" -eq 2 ] && [[ $output == *"no brokers given"* ]]
	run fp-lag -b 127.0.0.1:1 -G g -a 'lag >> 5'
	[ "$status" -eq 2 ] && [[ $output == *"-a 'lag >> 5': column 6: expected a number, found '>'"* ]]
	run fp-lag -b 127.0.0.1:1 -G g -a 'lags > 5'
	[ "$status" -eq 2 ] && [[ $output == *"column 1: expected lag, lag_seconds"* ]]
	run fp-lag -b 127.0.0.1:1 -G g -f yaml
	[ "$status" -eq 2 ] && [[ $output == *"-f: expected json or frames, got 'yaml'"* ]]
	run fp-lag -b 127.0.0.1:1 -G g -i 0
	[ "$status" -eq 2 ]
	run fp-lag -b 127.0.0.1:1 -G g --listen nocolon
	[ "$status" -eq 2 ] && [[ $output == *"expected address:port"* ]]
}

@test "lag in messages and in seconds of a group that consumed then stopped" {
	consumed_then_stopped
	mkdir "$T/stats"
	FP_STATS_DIR="$T/stats" run fp-lag -b "$BROKER" -G g --once
	[ "$status" -eq 0 ]
	echo "$output" >"$T/out"
	# The metrics also go to the textfile directory, and nothing else.
	[ "$(ls "$T/stats")" = fp-lag-g.prom ]
	grep -qx 'featpipe_consumergroup_group_lag{group="g",topic="t",partition="0"} 60' "$T/stats/fp-lag-g.prom"
	# Every partition of the topic the group committed on, then the group line.
	[ "$(jq -c '[.topic, .partition, .committed, .end, .lag, .status]' "$T/out")" = \
	  "$(printf '%s\n' '["t",0,40,100,60,"OK"]' '["t",1,null,0,null,"OK"]' '[null,null,null,null,60,"OK"]')" ]
	# Exact: the first unconsumed message (offset 40) is 60 s - 40 ms old.
	secs=$(p0 "$T/out" lag_seconds)
	awk -v s="$secs" 'BEGIN { exit !(s >= 59.9 && s < 65) }'
	[ "$(jq -c 'select(.partitions) | .lag_seconds' "$T/out")" = "$secs" ]
}

@test "-t lists every partition; one without a committed offset has lag null" {
	consumed_then_stopped
	run fp-lag -b "$BROKER" -G g -t t --once
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c 'select(.partition == 1) | [.committed, .end, .lag, .lag_seconds, .status]')" = \
	  '[null,0,null,null,"OK"]' ]
	run fp-lag -b "$BROKER" -G g -t nosuch --once --timeout 2s
	[ "$status" -eq 4 ] && [[ $output == *"figures unknown: topic 'nosuch' not found"* ]]
}

@test "--once exits 0 when no rule fires, 5 when one does" {
	consumed_then_stopped
	run fp-lag -b "$BROKER" -G g --once -a 'lag > 100'
	[ "$status" -eq 0 ]
	run fp-lag -b "$BROKER" -G g --once -a 'lag > 100' -a 'lag_seconds > 30'
	[ "$status" -eq 5 ]
	[ "$(echo "$output" | jq -c 'select(.event) | [.event, .rule, .topic, .partition]')" = \
	  '["alert","lag_seconds > 30","t",0]' ]
	run fp-lag -b "$BROKER" -G g --once -a 'group_lag >= 60'
	[ "$status" -eq 5 ]
	[ "$(echo "$output" | jq -c 'select(.event) | [.event, .rule, .topic, .value]')" = \
	  '["alert","group_lag >= 60",null,60]' ]
	# "for 3" needs three checks: --once makes them, -i apart.
	run fp-lag -b "$BROKER" -G g --once -i 100ms -a 'lag > 50 for 3'
	[ "$status" -eq 5 ]
	[ "$(echo "$output" | jq -c 'select(.partitions) | .firing')" = "$(printf '0\n0\n1')" ]
}

@test "the lag > 2000 for 3 rule fires once, resolves once; --alert-cmd runs once per transition" {
	start_broker --topic big:1
	produce big 0 2500 10
	commit g big 0 100
	cat >"$T/hook" <<'EOF'
#!/bin/sh
printf '%s|%s|%s|%s|%s|%s|%s\n' "$FP_LAG_EVENT" "$FP_LAG_GROUP" "$FP_LAG_TOPIC" \
	"$FP_LAG_PARTITION" "$FP_LAG_RULE" "$FP_LAG_VALUE" "$FP_LAG_STATUS" >>"$HOOK_OUT"
echo "$FP_LAG_JSON" >>"$HOOK_OUT.json"
EOF
	chmod +x "$T/hook"
	export HOOK_OUT="$T/hook.out"
	bg_start lag fp-lag -b "$BROKER" -G g -i 150ms -w 64 --stop-after 1h \
		-a 'lag > 2000 for 3' --alert-cmd "$T/hook"
	wait_for grep -q '"firing":1' "$T/lag.out"
	sleep 1 # several more checks over the threshold
	commit g big 0 2500
	wait_for grep -q '"resolved"' "$T/lag.out"
	sleep 0.5
	stop_pid "$BG_PID"
	# Fired on the third check over 2000, not before, and once.
	[ "$(jq -c 'select(.partitions) | .firing' "$T/lag.out" | head -3)" = "$(printf '0\n0\n1')" ]
	[ "$(jq -c 'select(.event) | .event' "$T/lag.out")" = "$(printf '"alert"\n"resolved"')" ]
	[ "$(jq -c 'select(.partitions) | .firing' "$T/lag.out" | grep -c 1)" -ge 3 ]
	diff -u - "$T/hook.out" <<'EOF'
alert|g|big|0|lag > 2000 for 3|2400|OK
resolved|g|big|0|lag > 2000 for 3|0|OK
EOF
	[ "$(jq -r .event "$T/hook.out.json")" = "$(printf 'alert\nresolved')" ]
}

@test "status: OK, STALL when the committed offset stops with lag, STOP after --stop-after, OK when caught up" {
	consumed_then_stopped
	bg_start lag fp-lag -b "$BROKER" -G g -i 200ms -w 3 --stop-after 1500ms
	wait_for grep -q '"status":"STOP"' "$T/lag.out"
	commit g t 0 100
	wait_for grep -q '"previous":"STOP"' "$T/lag.out"
	stop_pid "$BG_PID"
	[ "$(jq -c 'select(.event == "status") | [.previous, .status]' "$T/lag.out")" = \
	  "$(printf '%s\n' '["OK","STALL"]' '["STALL","STOP"]' '["STOP","OK"]')" ]
	# The partition lines agree, and lag_seconds grows while stopped.
	[ "$(p0 "$T/lag.out" status | uniq | tr -d '"' | tr '\n' ' ')" = "OK STALL STOP OK " ]
	p0 "$T/lag.out" lag_seconds | awk 'NR > 1 && $1 != 0 && $1 <= prev { exit 1 } $1 != 0 { prev = $1 }'
}

@test "status WARN: the group commits but the lag keeps growing" {
	start_broker --topic t:1
	# A slow consumer: 10 messages in, 2 committed, every 0.2 s, for 3 s.
	cat >"$T/slow.py" <<'EOF'
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
p = Producer({'bootstrap.servers': sys.argv[1], 'linger.ms': 0})
c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': 'g', 'enable.auto.commit': False})
off = 0
for i in range(15):
    for j in range(10):
        p.produce('t', value=b'x', partition=0)
    p.flush(5)
    off += 2
    c.commit(offsets=[TopicPartition('t', 0, off)], asynchronous=False)
    if i == 0:
        open(sys.argv[2], 'w').close()
    time.sleep(0.2)
c.close()
EOF
	bg_start slow "$PY" "$T/slow.py" "$BROKER" "$T/started"
	slow=$BG_PID
	wait_for test -e "$T/started"
	bg_start lag fp-lag -b "$BROKER" -G g -i 300ms -w 3
	wait "$slow"
	stop_pid "$BG_PID"
	[ "$(jq -c 'select(.event == "status") | [.previous, .status]' "$T/lag.out" | head -1)" = '["OK","WARN"]' ]
	! grep -q '"status":"ST' "$T/lag.out"
}

@test "/metrics over HTTP, parsed; a broker that does not answer gives unknown, never stale" {
	consumed_then_stopped
	port=$(free_port)
	bg_start lag fp-lag -b "$BROKER" -G g -i 200ms --timeout 1s --listen "127.0.0.1:$port" \
		--alert 'lag > 10'
	wait_for sh -c "curl -sf http://127.0.0.1:$port/metrics | grep -q 'group_lag{'"
	curl -sf "http://127.0.0.1:$port/metrics" -o "$T/m1"
	# Every line is a comment or "name{labels} number".
	! grep -Ev '^(# (HELP|TYPE) .*|[a-z_]+\{[^}]*\} -?[0-9.e+]+)$' "$T/m1"
	metric() { awk -v m="$1" 'index($0, m) == 1 { print $NF }' "$2"; }
	[ "$(metric 'featpipe_consumergroup_group_lag{group="g",topic="t",partition="0"}' "$T/m1")" = 60 ]
	[ "$(metric 'featpipe_consumergroup_group_offset{group="g",topic="t",partition="0"}' "$T/m1")" = 40 ]
	[ "$(metric 'featpipe_consumergroup_partition_latest_offset{group="g",topic="t",partition="0"}' "$T/m1")" = 100 ]
	[ "$(metric 'featpipe_consumergroup_up{group="g"}' "$T/m1")" = 1 ]
	[ "$(metric 'featpipe_consumergroup_alert_firing{group="g",rule="lag > 10"}' "$T/m1")" = 1 ]
	secs=$(metric 'featpipe_consumergroup_group_lag_seconds{group="g",topic="t",partition="0"}' "$T/m1")
	awk -v s="$secs" 'BEGIN { exit !(s >= 59.9 && s < 70) }'
	grep -q '^# TYPE featpipe_consumergroup_group_lag gauge$' "$T/m1"
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/other"
	[ "$output" = 404 ]

	broker_ctl 'down 1'
	wait_for grep -q '"status":"ERR"' "$T/lag.out"
	wait_for sh -c "curl -sf http://127.0.0.1:$port/metrics | grep -q 'up{group=\"g\"} 0'"
	curl -sf "http://127.0.0.1:$port/metrics" -o "$T/m2"
	! grep -E '_(lag|lag_seconds|offset|latest_offset|sum_lag)\{' "$T/m2"
	[ "$(metric 'featpipe_consumergroup_group_status{group="g"}' "$T/m2")" = 4 ]
	# JSON: null, never the last figures and never negative.
	[ "$(jq -c 'select(.status == "ERR" and .partition == 0) | [.committed, .end, .lag, .lag_seconds]' "$T/lag.out" | sort -u)" = \
	  '[null,null,null,null]' ]
	[[ $(cat "$T/lag.err") == *"figures unknown"* ]]
	broker_ctl 'up 1'
	wait_for grep -q '"previous":"ERR"' "$T/lag.out"
	stop_pid "$BG_PID"
	[[ $(cat "$T/lag.err") == *"figures known again"* ]]
	run jq -c 'select(.lag != null and .lag < 0)' "$T/lag.out"
	[ -z "$output" ]
}

@test "--once with the broker down: figures null, exit 4" {
	consumed_then_stopped
	broker_ctl 'down 1'
	sleep 0.2
	run fp-lag -b "$BROKER" -G g -t t --once --timeout 1s -a 'lag > 10'
	[ "$status" -eq 4 ]
	[[ $output == *'"lag":null,"lag_seconds":null,"status":"ERR"'* ]]
	[[ $output == *'"event":"status"'*'"status":"ERR","previous":"OK"'* ]]
}

@test "--store: the pipeline's durable offsets, the smallest over the shards" {
	consumed_then_stopped
	start_redis
	rcli hset fp:p1:offsets t/0/0/2 70 t/0/1/2 55:3 >/dev/null
	FP_PIPELINE=p1 run fp-lag -b "$BROKER" -G g --once
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c 'select(.partition == 0) | [.committed, .stored, .stored_lag]')" = '[40,55,45]' ]
	# The man page example.
	[ "$(echo "$output" | jq -c 'select(.partition != null) | [.partition, .committed, .stored]')" = \
	  "$(printf '%s\n' '[0,40,55]' '[1,null,null]')" ]
	# A shard without a position: unknown.
	rcli hdel fp:p1:offsets t/0/1/2 >/dev/null
	rcli hset fp:p1:offsets t/0/0/3 80 >/dev/null
	FP_PIPELINE=p1 run fp-lag -b "$BROKER" -G g --once --store "$FP_REDIS"
	[ "$(echo "$output" | jq -c 'select(.partition == 0) | [.stored, .stored_lag]')" = '[null,null]' ]
	# Without a store: no such fields.
	unset FP_REDIS
	run fp-lag -b "$BROKER" -G g --once
	[ "$(echo "$output" | jq -c 'select(.partition == 0) | has("stored")')" = false ]
}

@test "-f frames: the same records as frames" {
	consumed_then_stopped
	fp-lag -b "$BROKER" -G g --once -f frames >"$T/frames"
	[ "$(fp-cat "$T/frames" | jq -c '[.topic, .partition, .lag]')" = \
	  "$(printf '%s\n' '["t",0,60]' '["t",1,null]' '[null,null,60]')" ]
}

@test "man page example: a cron check with an alert hook" {
	consumed_then_stopped
	# From EXAMPLES in fp-lag(1).
	run sh -c "fp-lag -b $BROKER -G g --once -a 'lag_seconds > 30' \
		--alert-cmd 'echo \"\$FP_LAG_TOPIC [\$FP_LAG_PARTITION] is \$FP_LAG_VALUE s behind\"' >/dev/null"
	[ "$status" -eq 5 ]
	[[ $output == "t [0] is "*" s behind" ]]
}

@test "README example: a real group member (kcat -G) consumed 40 of 100, then stopped" {
	start_broker --topic t:1
	seq 100 | kcat -P -b "$BROKER" -t t
	kcat -b "$BROKER" -G g -o beginning -c 40 -e t >/dev/null 2>&1
	run fp-lag -b "$BROKER" -G g --once -a 'lag > 50'
	[ "$status" -eq 5 ]
	[ "$(echo "$output" | jq -c 'select(.partition == 0 and .event == null) | [.committed, .end, .lag]')" = '[40,100,60]' ]
}
