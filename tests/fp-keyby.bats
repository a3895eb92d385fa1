#!/usr/bin/env bats
# fp-keyby: routing by key, broadcast of control frames, lifecycle, -o,
# dead letters, signals, backpressure.
load helper

FIX="$TESTS_DIR/fixtures/fp-keyby"

# gen_jsonl N: N records {"user":"uK","n":I} over 50 users (and every 7th
# an integer user id), one barrier every 100 records.
gen_jsonl() {
	awk -v n="$1" 'BEGIN {
		for (i = 1; i <= n; i++) {
			if (i % 7 == 0) printf "{\"user\":%d,\"n\":%d}\n", i % 50, i;
			else printf "{\"user\":\"u%d\",\"n\":%d}\n", i % 50, i;
			if (i % 100 == 0) printf "{\"@ctl\":\"barrier\",\"@epoch\":%d,\"@pos\":[]}\n", i / 100;
		}
	}'
}

# key_of: the user of each JSON line, as text ("u3" and 3 print as u3 / 3)
users_of() {
	jq -r 'select(has("@ctl") | not) | .user | tostring' "$@" | sort -u
}

@test "routing: union is the input, keys disjoint, order kept" {
	gen_jsonl 1000 | fp-cat -r > "$T/in"
	export OUT="$T"
	run fp-keyby -k user -n 3 -- 'fp-cat > "$OUT/out-$FP_SHARD.jsonl"' < "$T/in"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	for i in 0 1 2; do [ -s "$T/out-$i.jsonl" ]; done
	# every data record once
	cat "$T"/out-*.jsonl | jq -c 'select(has("@ctl") | not)' | sort > "$T/got"
	fp-cat "$T/in" | jq -c 'select(has("@ctl") | not)' | sort > "$T/want"
	diff -u "$T/want" "$T/got"
	# a key on one shard only
	for i in 0 1 2; do users_of "$T/out-$i.jsonl"; done | sort | uniq -d > "$T/dups"
	[ ! -s "$T/dups" ] || { cat "$T/dups"; return 1; }
	# order kept per shard: n increases
	for i in 0 1 2; do
		jq -r 'select(has("@ctl") | not) | .n' "$T/out-$i.jsonl" > "$T/n"
		sort -n "$T/n" | diff -u - "$T/n"
	done
}

@test "same key, same shard: across runs, and shard s of 4 is shard s mod 2 of 2" {
	gen_jsonl 500 | fp-cat -r > "$T/in"
	export OUT="$T"
	fp-keyby -k user -n 4 -- 'fp-cat > "$OUT/a-$FP_SHARD.jsonl"' < "$T/in"
	fp-keyby -k user -n 4 -- 'fp-cat > "$OUT/b-$FP_SHARD.jsonl"' < "$T/in"
	fp-keyby -k user -n 2 -- 'fp-cat > "$OUT/c-$FP_SHARD.jsonl"' < "$T/in"
	for i in 0 1 2 3; do cmp "$T/a-$i.jsonl" "$T/b-$i.jsonl"; done
	for s in 0 1; do
		users_of "$T/a-$s.jsonl" "$T/a-$((s + 2)).jsonl" > "$T/four"
		users_of "$T/c-$s.jsonl" > "$T/two"
		diff -u "$T/four" "$T/two"
	done
}

@test "the worked example of the man page: user-7 and 42 / \"42\"" {
	printf '%s\n' '{"k":"user-7"}' '{"k":42}' '{"k":"42"}' '{"k":{"@bin":"42"}}' | fp-cat -r > "$T/in"
	fp-keyby -k k -n 4 -o "$T/four-%d" < "$T/in"
	fp-keyby -k k -n 2 -o "$T/two-%d" < "$T/in"
	[ "$(fp-cat "$T/four-2")" = '{"k":"user-7"}' ]
	[ "$(fp-cat "$T/two-0")" = '{"k":"user-7"}' ]
	[ "$(fp-cat "$T/four-1" | wc -l)" -eq 3 ]
	[ "$(fp-cat "$T/two-1" | wc -l)" -eq 3 ]
	[ ! -s "$T/four-0" ]
	[ ! -s "$T/four-3" ]
	grep -q 'b1de7a364def053e' "$REPO_DIR/man/fp-keyby.1"
	grep -q '1217cb28c0ef2191' "$REPO_DIR/man/fp-keyby.1"
}

@test "frames are forwarded as the bytes received" {
	# encodings fp-cat would not write: str8 for a short key, bin key,
	# float32, uint32 for a small integer; all with the key "u1"
	python3 - "$T/in" <<'PY'
import struct, sys
bodies = [b'\x82\xd9\x04user\xa2u1\xa1f\xca\x3f\xc0\x00\x00',
          b'\x82\xa4user\xc4\x02u1\xa1n\xce\x00\x00\x00\x07',
          b'\x82\xa1f\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xa4user\xa2u1']
with open(sys.argv[1], 'wb') as f:
    for b in bodies:
        f.write(struct.pack('>I', len(b)) + b)
PY
	fp-cat --check "$T/in"
	fp-keyby -k user -n 1 -o "$T/one-%d" < "$T/in"
	cmp "$T/in" "$T/one-0"
	fp-keyby -k user -n 3 -o "$T/three-%d" < "$T/in"
	# one shard got all three, unchanged; the others nothing
	n=0
	for i in 0 1 2; do
		if [ -s "$T/three-$i" ]; then cmp "$T/in" "$T/three-$i"; n=$((n + 1)); fi
	done
	[ "$n" -eq 1 ]
}

@test "control frames reach every shard, in order with the data" {
	gen_jsonl 1000 | fp-cat -r > "$T/in"
	export OUT="$T"
	fp-keyby -k user -n 4 -- 'fp-cat > "$OUT/out-$FP_SHARD.jsonl"' < "$T/in"
	for i in 0 1 2 3; do
		# barriers 1..10 in order, each after every record before it in the input
		jq -r 'if has("@ctl") then "B \(.["@epoch"])" else "D \(.n)" end' "$T/out-$i.jsonl" > "$T/seq"
		[ "$(grep -c '^B' "$T/seq")" -eq 10 ]
		awk '$1 == "B" { if ($2 != ++b) exit 1; last = $2 * 100 }
		     $1 == "D" { if ($2 <= last) exit 1 }' "$T/seq"
	done
}

@test "FP_SHARD and FP_SHARDS are set for each shard" {
	export OUT="$T"
	fp-keyby -k user -n 3 -- 'cat > /dev/null; echo "$FP_SHARD/$FP_SHARDS" > "$OUT/env-$FP_SHARD"' < /dev/null
	[ "$(cat "$T/env-0" "$T/env-1" "$T/env-2")" = "$(printf '0/3\n1/3\n2/3')" ]
}

@test "the exit status is the worst of the shards at the end of input" {
	gen_jsonl 50 | fp-cat -r > "$T/in"
	run fp-keyby -k user -n 3 -- 'cat > /dev/null; exit $((FP_SHARD + 4))' < "$T/in"
	[ "$status" -eq 6 ]
	[[ $output == *"shard 2 (pid "*") exited with status 6"* ]]
}

# run_endless ARGS...: `run` fp-keyby ARGS on the frames of $T/in, repeated
# without end (the input never ends: only a failure stops it).
run_endless() {
	run bash -c 'while cat "$0"; do :; done | fp-keyby "$@"' "$T/in" "$@"
}

# start_held ARGS...: fp-keyby ARGS in the background on an input held open;
# returns once shards 0 and 1 wrote $T/pid-N.  KB: its pid.  finish_held
# waits for it; its exit status is then in $T/status, its stderr in $T/kb.err.
start_held() {
	rm -f "$T"/pid-* "$T/status" "$T/feed"
	mkfifo "$T/feed"
	(set +e; fp-keyby "$@" < "$T/feed" 2> "$T/kb.err"; echo $? > "$T/status") &
	SUB=$!
	FP_PIDS+=("$SUB")
	exec 9> "$T/feed"
	wait_for test -s "$T/pid-0"
	wait_for test -s "$T/pid-1"
	KB=$(pgrep -P "$SUB" -x fp-keyby)
}

finish_held() {
	wait "$SUB"
	exec 9>&-
}

# shards_gone N...: the processes in $T/pid-N no longer run (gone, or a
# zombie nobody reaped yet: orphans go to a pid 1 that may be slow to reap).
shards_gone() {
	local i st
	for i in "$@"; do
		st=$(ps -o stat= -p "$(cat "$T/pid-$i")" || true)
		case $st in '' | Z*) ;; *) echo "shard $i still runs ($st)"; return 1 ;; esac
	done
}

@test "a shard failing early stops every shard, exit with its status" {
	gen_jsonl 200 | fp-cat -r > "$T/in"
	export OUT="$T"
	run_endless -k user -n 3 -- \
		'echo $$ > "$OUT/pid-$FP_SHARD"; if [ $FP_SHARD = 1 ]; then sleep 0.3; exit 7; fi; exec cat > /dev/null'
	[ "$status" -eq 7 ]
	[[ $output == *"shard 1 (pid "*") exited with status 7 before the end of its input; stopping every shard"* ]]
	shards_gone 0 2
}

@test "a shard killed by a signal: exit 128+n" {
	gen_jsonl 200 | fp-cat -r > "$T/in"
	export OUT="$T"
	run_endless -k user -n 2 -- 'if [ $FP_SHARD = 0 ]; then kill -9 $$; fi; exec cat > /dev/null'
	[ "$status" -eq 137 ]
	[[ $output == *"shard 0 (pid "*") was killed by signal 9"* ]]
}

@test "a shard exiting 0 early, or closing its input: exit 3" {
	gen_jsonl 200 | fp-cat -r > "$T/in"
	export OUT="$T"
	run_endless -k user -n 2 -- 'if [ $FP_SHARD = 1 ]; then exit 0; fi; exec cat > /dev/null'
	[ "$status" -eq 3 ]
	[[ $output == *"shard 1 (pid "*") exited with status 0 before the end of its input"* ]]
	run_endless -k user -n 2 --grace 2 -- 'if [ $FP_SHARD = 1 ]; then exec 0<&-; sleep 30; fi; exec cat > /dev/null'
	[ "$status" -eq 3 ]
	[[ $output == *"shard 1 (pid "*") stopped reading its input (Broken pipe)"* ]]
}

@test "a missing key stops the run after handing on what came before (exit 1)" {
	printf '%s\n' '{"user":"a","n":1}' '{"user":"b","n":2}' '{"n":3}' '{"user":"a","n":4}' |
		fp-cat -r > "$T/in"
	export OUT="$T"
	run fp-keyby -k user -n 2 -- 'fp-cat > "$OUT/out-$FP_SHARD.jsonl"' < "$T/in"
	[ "$status" -eq 1 ]
	[[ $output == *"fp-keyby: frame 3 at offset 30: the key field 'user' is missing"* ]]
	[ "$(cat "$T"/out-*.jsonl | jq -s -c 'map(.n) | sort')" = '[1,2]' ]
}

@test "a key of another type is named in the error" {
	printf '%s\n' '{"user":{"id":1.5}}' | fp-cat -r > "$T/in"
	run fp-keyby -k user.id -n 2 -- 'cat > /dev/null' < "$T/in"
	[ "$status" -eq 1 ]
	[[ $output == *"frame 1 at offset 0: the key field 'user.id' is float, not a string or an integer"* ]]
	for v in null true '[1]' '{"a":1}'; do
		printf '{"user":%s}\n' "$v" | fp-cat -r > "$T/in"
		run fp-keyby -k user -n 2 -- 'cat > /dev/null' < "$T/in"
		[ "$status" -eq 1 ]
	done
}

@test "-k takes a path: nested names and array elements" {
	printf '%s\n' '{"u":{"ids":[5,"x"]}}' '{"u":{"ids":["5"]}}' '{"u":{"ids":[]}}' | fp-cat -r > "$T/in"
	fp-keyby -k 'u.ids[0]' -n 4 --dead-letter "$T/dl" -o "$T/o-%d" < "$T/in" 2> "$T/err"
	# 5 and "5" together; the empty array is a dead letter
	n=0
	for i in 0 1 2 3; do [ "$(fp-cat "$T/o-$i" | wc -l)" -eq 2 ] && n=$((n + 1)); done
	[ "$n" -eq 1 ]
	fp-cat "$T/dl" | jq -e '.reason == "the key field '"'"'u.ids[0]'"'"' is missing"'
	run fp-keyby -k 'u.' -n 2 -- cat
	[ "$status" -eq 2 ]
	[[ $output == *"-k: 'u.', column 3: expected a field name after '.'"* ]]
}

@test "dead letters: the frame as received, the reason, @src, and the run goes on" {
	printf '%s\n' '{"@src":["t",0,5],"user":"a"}' '{"@src":["t",0,6],"user":2.5}' \
		'{"@src":["t",1,7],"x":1}' '{"user":"b"}' | fp-cat -r > "$T/in"
	export OUT="$T"
	run fp-keyby -k user -n 2 --dead-letter "$T/dl" -- 'fp-cat > "$OUT/out-$FP_SHARD.jsonl"' < "$T/in"
	[ "$status" -eq 0 ]
	[[ $output == *"frame 2 at offset "*": the key field 'user' is float, not a string or an integer; written to '$T/dl'"* ]]
	[[ $output == *"2 frames without a usable key written to '$T/dl'"* ]]
	[ "$(cat "$T"/out-*.jsonl | wc -l)" -eq 2 ]
	fp-cat "$T/dl" > "$T/dl.jsonl"
	[ "$(jq -c '.["@src"]' "$T/dl.jsonl" | paste -sd' ')" = '["t",0,6] ["t",1,7]' ]
	# the frame field holds the original body, byte for byte
	jq -r '.frame["@b64"]' "$T/dl.jsonl" | head -1 | base64 -d > "$T/body"
	fp-cat -n 2 "$T/in" | tail -1 | fp-cat -r | tail -c +5 | cmp - "$T/body"
	# appended, not truncated
	fp-keyby -k user -n 2 --dead-letter "$T/dl" -- 'cat > /dev/null' < "$T/in" 2>/dev/null
	[ "$(fp-cat "$T/dl" | wc -l)" -eq 4 ]
}

@test "-o with named pipes" {
	gen_jsonl 3000 | fp-cat -r > "$T/in"
	mkfifo "$T/f-0" "$T/f-1" "$T/f-2"
	for i in 0 1 2; do bg_start "r$i" fp-cat "$T/f-$i"; done
	run fp-keyby -k user -n 3 -o "$T/f-%d" < "$T/in"
	[ "$status" -eq 0 ]
	for p in "${FP_PIDS[@]}"; do wait "$p"; done
	[ "$(cat "$T"/r?.out | jq -c 'select(has("@ctl") | not)' | wc -l)" -eq 3000 ]
	for i in 0 1 2; do [ "$(grep -c '@ctl' "$T/r$i.out")" -eq 30 ]; done
}

@test "-o: a reader that goes away is an I/O error" {
	gen_jsonl 100000 | fp-cat -r > "$T/in"
	mkfifo "$T/f-0"
	bg_start r0 head -c 1000 "$T/f-0"
	run fp-keyby -k user -n 1 -o "$T/f-%d" < "$T/in"
	[ "$status" -eq 3 ]
	[[ $output == *"error writing '$T/f-0': Broken pipe"* ]]
}

@test "-o pattern needs exactly one %d; %% is a percent sign" {
	: | fp-cat -r > "$T/in"
	run fp-keyby -k user -n 2 -o "$T/x"
	[ "$status" -eq 2 ]
	[[ $output == *"must hold exactly one %d"* ]]
	run fp-keyby -k user -n 2 -o "$T/x-%d-%d"
	[ "$status" -eq 2 ]
	run fp-keyby -k user -n 2 -o "$T/x-%s"
	[ "$status" -eq 2 ]
	fp-keyby -k user -n 2 -o "$T/100%%-%d" < "$T/in"
	[ -f "$T/100%-0" ]
	[ -f "$T/100%-1" ]
}

@test "signals: SIGTERM and SIGINT forwarded to the shard groups" {
	export OUT="$T"
	for sig in TERM INT; do
		rm -f "$T"/got-*
		start_held -k user -n 2 -- \
			'trap "echo got > \"$OUT/got-$FP_SHARD\"; exit 0" TERM INT; echo $$ > "$OUT/pid-$FP_SHARD"; while :; do sleep 0.05; done'
		kill -"$sig" "$KB"
		finish_held
		want=$([ $sig = TERM ] && echo 143 || echo 130)
		[ "$(cat "$T/status")" -eq "$want" ] || { cat "$T/kb.err"; return 1; }
		[ -s "$T/got-0" ]
		[ -s "$T/got-1" ]
		shards_gone 0 1
	done
}

@test "SIGTERM reaches every process of a shard, not only its shell" {
	export OUT="$T"
	# the recorded pid is a background process of the shard's shell
	start_held -k user -n 2 -- 'sleep 60 & echo $! > "$OUT/pid-$FP_SHARD"; cat > /dev/null; wait'
	kill -TERM "$KB"
	finish_held
	[ "$(cat "$T/status")" -eq 143 ]
	sleep 0.2
	shards_gone 0 1
}

@test "a shard that ignores SIGTERM gets SIGKILL after --grace" {
	export OUT="$T"
	start_held -k user -n 2 --grace 300ms -- \
		'trap "" TERM; echo $$ > "$OUT/pid-$FP_SHARD"; while :; do sleep 0.05; done'
	start=$(date +%s%N)
	kill -TERM "$KB"
	finish_held
	took=$((($(date +%s%N) - start) / 1000000))
	[ "$(cat "$T/status")" -eq 143 ]
	[ "$took" -lt 3000 ]
	grep -q "still running after 300 ms; killing it" "$T/kb.err"
	shards_gone 0 1
}

@test "backpressure: a slow shard blocks fp-keyby, loses nothing, memory bounded" {
	# ~6 MB of input, far more than the pipes and buffers hold
	gen_jsonl 300000 | fp-cat -r > "$T/in"
	export OUT="$T"
	# the baseline: the same pipeline over 1000 lines (what a sanitizer
	# build or the libc takes anyway differs from machine to machine)
	gen_jsonl 1000 | fp-cat -r > "$T/small"
	base=$(/usr/bin/time -f 'maxrss=%M' fp-keyby -k user -n 2 -- 'fp-cat --check >/dev/null' \
		< "$T/small" 2>&1 | sed -n 's/.*maxrss=\([0-9]*\).*/\1/p')
	run /usr/bin/time -f 'maxrss=%M' fp-keyby -k user -n 2 -- \
		'if [ $FP_SHARD = 0 ]; then sleep 1; fi; fp-cat --check > "$OUT/check-$FP_SHARD"' < "$T/in"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	total=0
	for i in 0 1; do
		n=$(sed 's/.*data=\([0-9]*\).*/\1/' "$T/check-$i")
		total=$((total + n))
		grep -q 'control=3000 ' "$T/check-$i"
	done
	[ "$total" -eq 300000 ]
	rss=$(echo "$output" | sed -n 's/.*maxrss=\([0-9]*\).*/\1/p')
	echo "maxrss $rss KiB, baseline $base KiB"
	# holding the input would take 6 MB more; bounded buffers, far less
	[ "$((rss - base))" -lt 3000 ]
}

@test "truncated or invalid input: exit 1 after handing on what came before" {
	printf '%s\n' '{"user":"a"}' '{"user":"b"}' | fp-cat -r > "$T/in"
	head -c -3 "$T/in" > "$T/cut"
	export OUT="$T"
	run fp-keyby -k user -n 2 -- 'fp-cat > "$OUT/out-$FP_SHARD.jsonl"' < "$T/cut"
	[ "$status" -eq 1 ]
	[[ $output == *"truncated frame 2 at offset"* ]]
	[ "$(cat "$T"/out-*.jsonl)" = '{"user":"a"}' ]
	run fp-keyby -k user -n 2 -- 'cat > /dev/null' < "$FIX/events.jsonl"
	[ "$status" -eq 1 ]
	[[ $output == *"input looks like JSON lines"* ]]
}

@test "usage errors exit 2" {
	run fp-keyby -n 2 -- cat
	[ "$status" -eq 2 ]
	[[ $output == *"-k field"* ]]
	run fp-keyby -k user -- cat
	[ "$status" -eq 2 ]
	[[ $output == *"-n shards"* ]]
	run fp-keyby -k user -n 0 -- cat
	[ "$status" -eq 2 ]
	run fp-keyby -k user -n 1025 -- cat
	[ "$status" -eq 2 ]
	run fp-keyby -k user -n 2
	[ "$status" -eq 2 ]
	[[ $output == *"give a command"* ]]
	run fp-keyby -k user -n 2 -o "x%d" -- cat
	[ "$status" -eq 2 ]
	[[ $output == *"not both"* ]]
	run fp-keyby -k user -n 2 -- cat -u
	[ "$status" -eq 2 ]
	[[ $output == *"as one argument"* ]]
	run fp-keyby -k user -n 2 --grace soon -- cat
	[ "$status" -eq 2 ]
	run fp-keyby -k 'a b' -n 2 -- cat
	[ "$status" -eq 2 ]
	[[ $output == *"column 2"* ]]
}

@test "man page examples" {
	cd "$T"
	cp "$FIX/events.jsonl" "$FIX/mixed.jsonl" .
	# 1: split into files
	fp-cat -r events.jsonl | fp-keyby -k user_id -n 2 -- 'fp-cat > shard-$FP_SHARD.jsonl'
	[ "$(cat shard-1.jsonl)" = "$(printf '%s\n' '{"user_id":42,"action":"view"}' '{"user_id":"42","action":"order"}')" ]
	[ "$(cat shard-0.jsonl)" = '{"user_id":"user-7","action":"view"}' ]
	# 2: named pipes
	fp-cat -r events.jsonl > events.frames
	mkfifo in-0 in-1
	fp-cat < in-0 > out-0.jsonl & r0=$!
	fp-cat < in-1 > out-1.jsonl & r1=$!
	fp-keyby -k user_id -n 2 -o in-%d < events.frames
	wait $r0 $r1
	cmp out-0.jsonl shard-0.jsonl
	cmp out-1.jsonl shard-1.jsonl
	# 3: dead letters
	fp-cat -r mixed.jsonl > mixed.frames
	run fp-keyby -k user_id -n 2 --dead-letter bad.frames -- 'cat > /dev/null' < mixed.frames
	[ "$status" -eq 0 ]
	[ "$output" = "fp-keyby: frame 2 at offset 32: the key field 'user_id' is missing; written to 'bad.frames'
fp-keyby: 1 frame without a usable key written to 'bad.frames'" ]
	[ "$(fp-cat bad.frames)" = '{"reason":"the key field '"'"'user_id'"'"' is missing","offset":32,"frame":{"@b64":"gaZhY3Rpb26lY2xpY2s="}}' ]
	grep -qF '{"reason":"the key field '"'"'user_id'"'"' is missing","offset":32,"frame":{"@b64":"gaZhY3Rpb26lY2xpY2s="}}' "$REPO_DIR/man/fp-keyby.1"
}
