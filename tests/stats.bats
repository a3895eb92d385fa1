#!/usr/bin/env bats
# Stage metrics (lib/stats): every stage writes $FP_STATS_DIR/TOOL[-SHARD].prom
# and dumps the same text to stderr on SIGUSR1; the figures agree with the
# records pushed through.
load helper

# metric FILE NAME [LABEL=VALUE]: the value of the sample NAME (with that
# label, if given) in the Prometheus text FILE; fails when absent.
metric() {
	awk -v name="$2" -v want="${3:-}" '
		/^#/ || NF == 0 { next }
		{
			n = $1; sub(/\{.*/, "", n)
			if (n != name) next
			if (want != "") {
				split(want, kv, "=")
				if (index($0, kv[1] "=\"" kv[2] "\"") == 0) next
			}
			print $NF; found = 1; exit
		}
		END { exit !found }' "$1"
}

# prom_check FILE: every line is a comment or "name{labels} value", every
# name has a TYPE, the labels tool/shard/pipeline are there.
prom_check() {
	awk '
		/^# TYPE / { typed[$3] = 1; next }
		/^# HELP / || NF == 0 { next }
		{
			if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*\{tool="[^"]*",shard="[0-9]+",pipeline="[^"]*"[^}]*\} ([0-9.e+-]+|NaN|[+-]Inf)$/) {
				print "bad line: " $0; bad = 1; next
			}
			n = $1; sub(/\{.*/, "", n); base = n
			sub(/_(sum|count)$/, "", base)
			if (!(n in typed) && !(base in typed)) { print "untyped: " n; bad = 1 }
		}
		END { exit bad }' "$1"
}

local_setup() {
	export FP_STATS_DIR="$T/stats"
	mkdir "$FP_STATS_DIR"
}

IMP="$TESTS_DIR/fixtures/fp-import"

# raw_frames TOPIC FILE: each line of FILE as the value of a raw message frame.
raw_frames() {
	jq -R -c --arg t "$1" '{"@src":[$t,0,input_line_number],"@ts":(1000*input_line_number),
		"@in":1,"key":null,"value":{"@bin":.}}' "$2" | fp-cat -r
}

@test "fp-import: in = messages, out = records, errors by reason = dead letters" {
	raw_frames views "$IMP/backfill.jsonl" > "$T/in"
	fp-import -d "$IMP/shop.fpd" --dead-letter "$T/dead" "$T/in" > "$T/out" 2>"$T/err"
	F="$FP_STATS_DIR/fp-import.prom"
	prom_check "$F"
	[ "$(metric "$F" featpipe_import_records_in_total)" -eq 5 ]
	[ "$(metric "$F" featpipe_import_records_out_total)" -eq "$(fp-cat "$T/out" | wc -l)" ]
	[ "$(metric "$F" featpipe_import_records_out_total)" -eq 2 ]
	[ "$(metric "$F" featpipe_import_records_filtered_total)" -eq 1 ]
	[ "$(metric "$F" featpipe_import_errors_total reason=bad_field)" -eq 1 ]
	[ "$(metric "$F" featpipe_import_errors_total reason=bad_payload)" -eq 1 ]
	[ "$(fp-cat "$T/dead" | wc -l)" -eq 2 ]
	# FP_SHARD names the file and the label; FP_PIPELINE the label
	FP_SHARD=3 FP_PIPELINE=p1 fp-import -d "$IMP/shop.fpd" "$T/in" > /dev/null 2>&1
	grep -q '^featpipe_import_records_in_total{tool="fp-import",shard="3",pipeline="p1"} 5$' \
		"$FP_STATS_DIR/fp-import-3.prom"
	# a fatal error still leaves the last figures
	fp-import -d "$IMP/shop.fpd" --strict "$T/in" > /dev/null 2>&1 || true
	[ "$(metric "$F" featpipe_import_records_in_total)" -eq 3 ]
	# nothing is written without FP_STATS_DIR
	rm "$FP_STATS_DIR"/*
	FP_STATS_DIR= fp-import -d "$IMP/shop.fpd" "$T/in" > /dev/null 2>&1
	[ -z "$(ls "$FP_STATS_DIR")" ]
}

@test "fp-import: SIGUSR1 dumps the figures to stderr while it runs" {
	raw_frames views "$IMP/views.jsonl" > "$T/in"
	mkfifo "$T/fifo"
	bg_start imp fp-import -d "$IMP/shop.fpd" "$T/fifo"
	exec 7>"$T/fifo"
	cat "$T/in" >&7
	wait_for test -s "$T/imp.out"
	kill -USR1 "$BG_PID"
	cat "$T/in" >&7    # the dump comes at the next chunk read
	wait_for grep -q '^featpipe_import_records_in_total{' "$T/imp.err"
	exec 7>&-
	n=$(grep -c . "$IMP/views.jsonl")
	grep -Eq "^featpipe_import_records_in_total\{[^}]*\} (${n}|$((2 * n)))$" "$T/imp.err"
	grep -q '^# TYPE featpipe_import_records_in_total counter$' "$T/imp.err"
}

KB="$TESTS_DIR/fixtures/fp-keyby"

@test "fp-keyby: in = frames, out = routed, control frames, bad keys" {
	{ cat "$KB/mixed.jsonl"; echo '{"@ctl":"barrier","@epoch":1,"@pos":[]}'; } | fp-cat -r > "$T/in"
	fp-keyby -k user_id -n 2 --dead-letter "$T/dead" -o "$T/s%d" < "$T/in" 2>/dev/null
	F="$FP_STATS_DIR/fp-keyby.prom"
	prom_check "$F"
	frames=$(fp-cat "$T/in" | wc -l)
	dead=$(fp-cat "$T/dead" | wc -l)
	[ "$dead" -gt 0 ]
	[ "$(metric "$F" featpipe_keyby_records_in_total)" -eq "$frames" ]
	[ "$(metric "$F" featpipe_keyby_records_out_total)" -eq $((frames - dead)) ]
	[ "$(metric "$F" featpipe_keyby_control_frames_total)" -eq 1 ]
	[ "$(metric "$F" featpipe_keyby_errors_total reason=bad_key)" -eq "$dead" ]
	# each shard got the control frame: data out = shard frames - shards
	got=$(cat "$T/s0" "$T/s1" | fp-cat | wc -l)
	[ "$got" -eq $((frames - dead + 1)) ]
	[ "$(metric "$F" featpipe_keyby_batch_size_count)" -ge 1 ]
	[ "$(metric "$F" featpipe_keyby_batch_size_sum)" -eq "$frames" ]
	# without --dead-letter the first bad key stops the run: counted, not routed
	fp-keyby -k user_id -n 2 -o "$T/s%d" < "$T/in" 2>/dev/null || true
	[ "$(metric "$F" featpipe_keyby_errors_total reason=bad_key)" -eq 1 ]
	[ "$(metric "$F" featpipe_keyby_records_out_total)" -eq \
		$(($(metric "$F" featpipe_keyby_records_in_total) - 1)) ]
	[ "$(cat "$T/s0" "$T/s1" | fp-cat | wc -l)" -eq "$(metric "$F" featpipe_keyby_records_out_total)" ]
}

@test "fp-keyby: SIGUSR1 dumps at once, even while it waits for input" {
	fp-cat -r "$KB/events.jsonl" > "$T/in"
	mkfifo "$T/fifo"
	bg_start kb sh -c 'exec fp-keyby -k user_id -n 2 -o "$1/s%d" < "$1/fifo"' sh "$T"
	exec 7>"$T/fifo"
	cat "$T/in" >&7
	wait_for test -s "$T/s0"
	kill -USR1 "$BG_PID"
	wait_for grep -q '^featpipe_keyby_records_in_total{' "$T/kb.err"
	n=$(fp-cat "$T/in" | wc -l)
	grep -Eq "^featpipe_keyby_records_in_total\{[^}]*\} $n$" "$T/kb.err"
	exec 7>&-
}

# updates N KEYS AGE_MS IN_AGE_MS: N fp-merge updates over KEYS keys with @ts
# AGE_MS and @in IN_AGE_MS before now, a barrier after every 100.
updates() {
	python3 - "$@" <<'PY'
import sys, time, json
n, keys, age, in_age = map(int, sys.argv[1:5])
now_ms = int(time.time() * 1000)
for i in range(n):
    print(json.dumps({"@key": "k%d" % (i % keys), "@src": ["ev", 0, i], "@ts": now_ms - age,
                      "@in": (now_ms - in_age) * 1000, "n": i}))
    if i % 100 == 99:
        print(json.dumps({"@ctl": "barrier", "@epoch": i // 100, "@pos": [["ev", 0, i + 1]]}))
PY
}

@test "fp-kvwrite: latency count = records committed; e2e from @ts, pipeline from @in" {
	start_redis
	updates 450 7 3000 500 | fp-cat -r > "$T/in"
	fp-kvwrite < "$T/in"
	F="$FP_STATS_DIR/fp-kvwrite.prom"
	prom_check "$F"
	[ "$(metric "$F" featpipe_kvwrite_records_in_total)" -eq 450 ]
	[ "$(metric "$F" featpipe_kvwrite_records_out_total)" -eq 450 ]
	[ "$(metric "$F" featpipe_kvwrite_barriers_total)" -eq 4 ]
	[ "$(metric "$F" featpipe_kvwrite_epochs_total)" -eq 5 ]
	[ "$(metric "$F" featpipe_kvwrite_keys_written_total)" -eq 35 ]
	[ "$(metric "$F" featpipe_kvwrite_batch_size_sum)" -eq 35 ]
	[ "$(metric "$F" featpipe_kvwrite_batch_updates_sum)" -eq 450 ]
	[ "$(metric "$F" featpipe_kvwrite_commit_latency_microseconds_count)" -eq 5 ]
	[ "$(metric "$F" featpipe_kvwrite_e2e_latency_microseconds_count)" -eq 450 ]
	[ "$(metric "$F" featpipe_kvwrite_pipeline_latency_microseconds_count)" -eq 450 ]
	[ "$(rcli hget fp:default:offsets ev/0/0/1)" = 450 ]
	# @ts was 3 s old, @in 0.5 s old (buckets are within 6.25%; the run
	# itself adds a little)
	for q in 0.5 0.99 0.999; do
		e2e=$(metric "$F" featpipe_kvwrite_e2e_latency_microseconds quantile=$q)
		pipe=$(metric "$F" featpipe_kvwrite_pipeline_latency_microseconds quantile=$q)
		awk -v e="$e2e" -v p="$pipe" 'BEGIN { exit !(e >= 2800000 && e < 20000000 &&
			p >= 460000 && p < 17500000 && e > p) }'
	done
	# no @ts (Kafka's -1) or no @in: committed, left out of that latency
	printf '%s\n' '{"@key":"x","@src":["ev",0,450],"@ts":-1,"@in":1}' \
		'{"@key":"y","@src":["ev",0,451],"@ts":1}' | fp-cat -r | fp-kvwrite
	[ "$(metric "$F" featpipe_kvwrite_records_out_total)" -eq 2 ]
	[ "$(metric "$F" featpipe_kvwrite_e2e_latency_microseconds_count)" -eq 1 ]
	[ "$(metric "$F" featpipe_kvwrite_pipeline_latency_microseconds_count)" -eq 1 ]
	# --dry-run commits nothing: sizes, but no latency
	fp-kvwrite --dry-run < "$T/in" > /dev/null
	[ "$(metric "$F" featpipe_kvwrite_records_out_total)" -eq 450 ]
	[ "$(metric "$F" featpipe_kvwrite_e2e_latency_microseconds_count)" -eq 0 ]
}

@test "fp-kvwrite: SIGUSR1 dumps within a second while it waits for input" {
	start_redis
	updates 50 5 1000 100 | fp-cat -r > "$T/in"
	mkfifo "$T/fifo"
	bg_start kvw sh -c 'exec fp-kvwrite < "$1"' sh "$T/fifo"
	exec 7>"$T/fifo"
	cat "$T/in" >&7
	wait_for sh -c '[ "$(redis-cli -p "$1" hget fp:default:offsets ev/0/0/1)" = 50 ]' sh "$REDIS_PORT"
	kill -USR1 "$BG_PID"
	wait_for grep -q '^featpipe_kvwrite_e2e_latency_microseconds_count{[^}]*} 50$' "$T/kvw.err"
	grep -q '^featpipe_kvwrite_records_out_total{[^}]*} 50$' "$T/kvw.err"
	exec 7>&-
	wait "$BG_PID"
}

MF="$TESTS_DIR/fixtures/fp-merge"

@test "fp-merge: in = records, out = updates, control, errors by reason" {
	fp-cat -r "$MF/basic.jsonl" > "$T/in"
	fp-merge -f "$MF/cars.fp" --no-store < "$T/in" 2>/dev/null > "$T/out"
	F="$FP_STATS_DIR/fp-merge.prom"
	prom_check "$F"
	data=$(fp-cat "$T/in" | jq -c 'select(has("@ctl") | not)' | wc -l)
	ctl=$(fp-cat "$T/in" | jq -c 'select(has("@ctl"))' | wc -l)
	updates=$(fp-cat "$T/out" | jq -c 'select(has("@key"))' | wc -l)
	[ "$(metric "$F" featpipe_merge_records_in_total)" -eq "$data" ]
	[ "$(metric "$F" featpipe_merge_records_out_total)" -eq "$updates" ]
	[ "$(metric "$F" featpipe_merge_control_frames_total)" -eq "$ctl" ]
	[ "$(metric "$F" featpipe_merge_errors_total reason=no_key)" -eq 1 ]
	[ "$(metric "$F" featpipe_merge_errors_total reason=no_time)" -eq 0 ]
	[ "$(metric "$F" featpipe_merge_skipped_replays_total)" -eq 0 ]
	[ "$(metric "$F" featpipe_merge_batch_size_sum)" -eq $((data + ctl)) ]
	[ "$(metric "$F" featpipe_merge_batch_latency_microseconds_count)" -ge 1 ]
	[ "$(metric "$F" featpipe_merge_load_latency_microseconds_count)" -eq 0 ]
}

@test "fp-merge: skipped replays counted per shard file; loads timed" {
	start_redis
	rcli HSET fp:p1:offsets ev/0/1/2 5:2 ev/1/1/2 3 >/dev/null
	for s in "4" "5,0" "5,1" "5,2" "1,2" "1,3" "6"; do
		case $s in 1,*) p=1; o=${s#1,} ;; *) p=0; o=$s ;; esac
		echo "{\"user_id\":1,\"ts\":1,\"@src\":[\"ev\",$p,$o]}"
	done > "$T/in.jsonl"
	fp-cat -r "$T/in.jsonl" | FP_PIPELINE=p1 FP_SHARD=1 FP_SHARDS=2 fp-merge -f "$MF/cars.fp" \
		2>/dev/null > "$T/out"
	F="$FP_STATS_DIR/fp-merge-1.prom"
	prom_check "$F"
	grep -q 'pipeline="p1"' "$F"
	[ "$(metric "$F" featpipe_merge_records_in_total)" -eq 7 ]
	[ "$(metric "$F" featpipe_merge_skipped_replays_total)" -eq 4 ]
	# the 3 records applied are one key's: coalesced into one update
	[ "$(metric "$F" featpipe_merge_records_out_total)" -eq 1 ]
	[ "$(fp-cat "$T/out" | grep -c '"@key"')" -eq 1 ]   # after the origin frame
	[ "$(fp-cat "$T/out" | head -1 | jq -r '.["@ctl"]')" = origin ]
	[ "$(metric "$F" featpipe_merge_keys_loaded_total)" -eq 1 ]
	[ "$(metric "$F" featpipe_merge_load_latency_microseconds_count)" -eq 1 ]
	[ "$(metric "$F" featpipe_merge_keys)" -eq 1 ]
}

@test "fp-produce and fp-consume: messages, bytes, deliveries, barriers, partitions" {
	start_broker --topic t:2
	seq 30 | fp-produce --lines -q -t t
	F="$FP_STATS_DIR/fp-produce.prom"
	prom_check "$F"
	bytes=$(seq 30 | tr -d '\n' | wc -c)
	[ "$(metric "$F" featpipe_produce_records_in_total)" -eq 30 ]
	[ "$(metric "$F" featpipe_produce_records_out_total)" -eq 30 ]
	[ "$(metric "$F" featpipe_produce_bytes_total)" -eq "$bytes" ]
	[ "$(metric "$F" featpipe_produce_errors_total reason=delivery_failed)" -eq 0 ]
	[ "$(metric "$F" featpipe_produce_delivery_latency_microseconds_count)" -eq 30 ]
	fp-consume -q -t t -e > "$T/out"
	F="$FP_STATS_DIR/fp-consume.prom"
	prom_check "$F"
	[ "$(metric "$F" featpipe_consume_records_in_total)" -eq 30 ]
	[ "$(metric "$F" featpipe_consume_records_out_total)" -eq "$(fp-cat "$T/out" | grep -vc '"@ctl"')" ]
	[ "$(metric "$F" featpipe_consume_bytes_total)" -eq "$bytes" ]
	[ "$(metric "$F" featpipe_consume_barriers_total)" -eq "$(fp-cat "$T/out" | grep -c '"barrier"')" ]
	[ "$(metric "$F" featpipe_consume_batch_size_sum)" -eq 30 ]
	[ "$(metric "$F" featpipe_consume_partitions_assigned)" -eq 0 ]  # released at exit
	[ "$(metric "$F" featpipe_consume_errors_total reason=consumer_error)" -eq 0 ]
}

@test "fp-consume: a group's rebalances; SIGUSR1 dumps while it waits" {
	start_broker --topic g:2
	seq 10 | fp-produce --lines -q -t g
	bg_start con fp-consume -q -G grp -t g
	wait_for sh -c '[ "$(fp-cat "$1" | grep -c "@src")" -eq 10 ]' sh "$T/con.out"
	kill -USR1 "$BG_PID"
	wait_for grep -q '^featpipe_consume_records_in_total{[^}]*} 10$' "$T/con.err"
	grep -q '^featpipe_consume_rebalances_total{[^}]*} [1-9]' "$T/con.err"
	grep -q '^featpipe_consume_partitions_assigned{[^}]*} 2$' "$T/con.err"
}
