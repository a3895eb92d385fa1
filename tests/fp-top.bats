#!/usr/bin/env bats
# fp-top: a view of the pipeline from the metrics files of its stages.
load helper

# stage_file PATH IN OUT MTIME: a stage's textfile as lib/stats writes it,
# put in place atomically with the given mtime (seconds since the epoch).
stage_file() {
	local L='{tool="fp-merge",shard="0",pipeline="default"'
	cat >"$1.tmp" <<EOF
# HELP featpipe_merge_records_in_total Records read.
# TYPE featpipe_merge_records_in_total counter
featpipe_merge_records_in_total$L} $2
featpipe_merge_records_out_total$L} $3
featpipe_merge_errors_total$L,reason="bad_json"} 3
featpipe_merge_errors_total$L,reason="too_big"} 2
featpipe_merge_skipped_replays_total$L} 7
featpipe_merge_load_latency_microseconds$L,quantile="0.5"} 200
featpipe_merge_load_latency_microseconds$L,quantile="0.99"} 1500
featpipe_merge_commit_latency_microseconds$L,quantile="0.99"} NaN
EOF
	touch -d "@$4" "$1.tmp"
	mv "$1.tmp" "$1"
}

@test "usage: a directory is needed" {
	run fp-top -n 1
	[ "$status" -eq 2 ] && [[ $output == *"no directory given (argument or FP_STATS_DIR)"* ]]
	run fp-top -n 1 "$T/none"
	[ "$status" -eq 3 ] && [[ $output == *"unable to open '$T/none'"* ]]
}

@test "stages: rate between two versions of a file, errors, skipped, p99 in ms" {
	mkdir "$T/stats"
	stage_file "$T/stats/fp-merge-0.prom" 100 90 1000000000
	bg_start top fp-top -i 1s -n 2 "$T/stats"
	wait_for grep -q fp-merge-0 "$T/top.out"
	stage_file "$T/stats/fp-merge-0.prom" 300 190 1000000010
	wait "$BG_PID"
	# First view: no rate yet.  Second: (300-100)/10 s and (190-90)/10 s.
	run awk '$1 == "fp-merge-0" { print $2, $3, $4, $5, $6 }' "$T/top.out"
	[ "$output" = "$(printf '%s\n' '- - 5 7 1.500' '20.0 10.0 5 7 1.500')" ]
	head -1 "$T/top.out" | grep -Eq '^STAGE +IN/s +OUT/s +ERRORS +SKIPPED +P99_MS +AGE$'
}

@test "fp-lag's file gives the group's lag; FP_STATS_DIR is the default directory" {
	start_broker --topic t:1
	seq 100 | kcat -P -b "$BROKER" -t t
	/usr/bin/python3 -c '
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "g", "enable.auto.commit": False})
c.commit(offsets=[TopicPartition("t", 0, 40)], asynchronous=False)
c.close()' "$BROKER"
	export FP_STATS_DIR="$T/stats"
	mkdir "$FP_STATS_DIR"
	fp-lag -G g --once >/dev/null
	run fp-top -n 1
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | awk '$1 == "g" { print $2, $4 }')" = "60 OK" ]
	echo "$output" | grep -Eq '^GROUP +LAG +LAG_S +STATUS +AGE$'
}
