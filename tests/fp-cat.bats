#!/usr/bin/env bats
load helper

F="$BATS_TEST_DIRNAME/fixtures/fp-cat"

@test "round trip is exact: fp-cat -r | fp-cat reproduces the lines" {
	fp-cat -r "$F/values.jsonl" > "$T/v.frames"
	fp-cat "$T/v.frames" > "$T/back.jsonl"
	diff -u "$F/values.jsonl" "$T/back.jsonl"
	# and frames -> JSON -> frames gives the same bytes
	fp-cat "$T/v.frames" | fp-cat -r | cmp - "$T/v.frames"
}

@test "integers stay integers and floats stay floats (jq agrees on the types)" {
	printf '{"i":1,"f":1.0,"g":2.50}\n' | fp-cat -r | fp-cat > "$T/out"
	[ "$(cat "$T/out")" = '{"i":1,"f":1.0,"g":2.5}' ]
	[ "$(jq -r '.i|type' "$T/out")" = number ]
}

@test "blank lines are skipped; a last line without newline is read" {
	printf '\n{"a":1}\n   \n{"a":2}' | fp-cat -r | fp-cat > "$T/out"
	printf '{"a":1}\n{"a":2}\n' | diff -u - "$T/out"
}

@test "--check counts frames, data, control frames and bytes" {
	run fp-cat --check <(fp-cat -r "$F/values.jsonl")
	[ "$status" -eq 0 ]
	[[ $output =~ ^frames=8\ data=7\ control=1\ bytes=[0-9]+$ ]]
	bytes=$(fp-cat -r "$F/values.jsonl" | wc -c)
	[ "$output" = "frames=8 data=7 control=1 bytes=$bytes" ]
}

@test "-n stops after N frames, both ways" {
	run bash -c "fp-cat -r '$F/values.jsonl' | fp-cat -n 2"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	run bash -c "fp-cat -r -n 3 '$F/values.jsonl' | fp-cat --check"
	[ "$output" = "frames=3 data=3 control=0 bytes=$(fp-cat -r -n 3 "$F/values.jsonl" | wc -c)" ]
}

@test "several files and - are read in order" {
	fp-cat -r "$F/values.jsonl" > "$T/a"
	printf '{"x":1}\n' | fp-cat -r > "$T/b"
	run bash -c "fp-cat '$T/b' - '$T/b' < '$T/a' | wc -l"
	[ "$output" -eq 10 ]
}

@test "writing frames to a terminal is refused with a hint" {
	run script -qec "fp-cat -r $F/values.jsonl" /dev/null
	[ "$status" -eq 2 ]
	[[ $output == *"refusing to write binary frames to a terminal"* ]]
}

@test "JSON lines where frames should be: clear message, exit 1" {
	run fp-cat "$F/values.jsonl"
	[ "$status" -eq 1 ]
	[ "$output" = "fp-cat: $F/values.jsonl: frame 1 at offset 0: input looks like JSON lines; pipe it through 'fp-cat -r'" ]
}

# bad_tail HEX: a good frame, then the bytes HEX; fp-cat must print the good
# record, then fail with exit 1.
bad_tail() {
	printf '{"ok":1}\n' | fp-cat -r > "$T/in"
	printf "$1" >> "$T/in"
	run fp-cat "$T/in"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = '{"ok":1}' ]
}

@test "truncated frame: exit 1, earlier frames written" {
	bad_tail '\x00\x00\x00\x09\x81\xa1'
	[[ ${lines[1]} == *"truncated frame 2 at offset 9: length 9, only 2 bytes follow" ]]
}

@test "zero length: exit 1" {
	bad_tail '\x00\x00\x00\x00'
	[[ ${lines[1]} == *"frame 2 at offset 9: zero-length frame" ]]
}

@test "oversize length: exit 1, and --max-frame / FP_MAX_FRAME set the cap" {
	bad_tail '\x01\x00\x00\x01\x80'
	[[ ${lines[1]} == *"length 16777217 exceeds the maximum frame size 16777216" ]]
	printf '{"k":"0123456789"}\n' | fp-cat -r > "$T/f"
	run fp-cat --max-frame 10 "$T/f"
	[ "$status" -eq 1 ]
	[[ $output == *"exceeds the maximum frame size 10" ]]
	FP_MAX_FRAME=10 run fp-cat "$T/f"
	[ "$status" -eq 1 ]
	FP_MAX_FRAME=10x run fp-cat "$T/f"
	[ "$status" -eq 2 ]
	[[ $output == *"FP_MAX_FRAME: '10x': unknown size suffix"* ]]
	run bash -c "printf '{\"k\":\"0123456789\"}\n' | fp-cat -r --max-frame 10 > /dev/null"
	[ "$status" -eq 1 ]
	[[ $output == *"<stdin>:1: the record is 14 bytes as msgpack, more than the maximum frame size 10" ]]
}

@test "non-map root: exit 1" {
	bad_tail '\x00\x00\x00\x02\x91\x01'
	[[ ${lines[1]} == *"frame 2 at offset 9: the frame's root is not a map (type byte 0x91)" ]]
}

@test "trailing bytes inside a frame: exit 1" {
	bad_tail '\x00\x00\x00\x03\x80\xc0\xc0'
	[[ ${lines[1]} == *"frame 2 at offset 9: 2 trailing bytes after the map (it ends at byte 1 of 3)" ]]
}

@test "invalid msgpack: exit 1" {
	bad_tail '\x00\x00\x00\x04\x81\xa1k\xc1'
	[[ ${lines[1]} == *"frame 2 at offset 9: invalid msgpack at byte 3 of 4: invalid type byte" ]]
}

@test "a count larger than the bytes left: exit 1" {
	bad_tail '\x00\x00\x00\x05\xdf\x00\x01\x00\x00'
	[[ ${lines[1]} == *"claims 65536 entries but only 0 bytes are left" ]]
}

@test "invalid JSON on -r names file, line and column; earlier lines written" {
	printf '{"a":1}\n{"a":2}\n{"a":3,}\n{"a":4}\n' > "$T/bad.jsonl"
	run bash -c "fp-cat -r '$T/bad.jsonl' > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "fp-cat: $T/bad.jsonl:3:8: expected a string key, found '}'" ]
	[ "$(fp-cat "$T/out")" = "$(printf '{"a":1}\n{"a":2}')" ]
}

@test "a JSON line that is not an object is refused on -r" {
	run bash -c "printf '[1,2]\n' | fp-cat -r > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "fp-cat: <stdin>:1:1: a frame must be a JSON object, found '['" ]
}

@test "a closed stdout (EPIPE) is a quiet stop with exit 0" {
	python3 -c 'import sys
for i in range(200000): sys.stdout.write("{\"i\":%d,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n" % i)' > "$T/big.jsonl"
	fp-cat -r "$T/big.jsonl" > "$T/big.frames"
	run bash -c "set -o pipefail; fp-cat '$T/big.frames' 2>'$T/err' | head -1"
	[ "$status" -eq 0 ]
	[ "$output" = '{"i":0,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}' ]
	[ ! -s "$T/err" ]
	run bash -c "set -o pipefail; fp-cat -r '$T/big.jsonl' 2>'$T/err' | head -c 10 >/dev/null"
	[ "$status" -eq 0 ]
	[ ! -s "$T/err" ]
}

@test "a missing file is exit 3 naming it; usage errors are exit 2" {
	run fp-cat "$T/nope"
	[ "$status" -eq 3 ]
	[ "$output" = "fp-cat: unable to open '$T/nope': No such file or directory" ]
	run fp-cat -r --check
	[ "$status" -eq 2 ]
	[[ ${lines[0]} == "fp-cat: --check reads frames; it cannot be combined with -r" ]]
	run fp-cat -n 0
	[ "$status" -eq 2 ]
	run fp-cat -n 5x
	[ "$status" -eq 2 ]
	[[ ${lines[0]} == "fp-cat: -n: '5x' is not a whole number" ]]
}

@test "man page EXAMPLES work as shown" {
	cd "$T"
	printf '%s\n' '{"user_id":42,"action":"view","price":9.5}' > ev.jsonl
	fp-cat -r ev.jsonl > ev.frames
	[ "$(fp-cat ev.frames)" = '{"user_id":42,"action":"view","price":9.5}' ]
	[ "$(fp-cat --check ev.frames)" = 'frames=1 data=1 control=0 bytes=41' ]
}

@test "fp-frames(5) EXAMPLES: the bytes of {\"a\":1}" {
	[ "$(printf '{"a":1}\n' | fp-cat -r | od -An -tx1)" = " 00 00 00 04 81 a1 61 01" ]
}

@test "featpipe(7) EXAMPLES: a fixture as frames and back" {
	[ "$(printf '{"user_id":42,"action":"view"}\n' | fp-cat -r | fp-cat)" = '{"user_id":42,"action":"view"}' ]
}

@test "README: the first pipeline works as shown" {
	cd "$T"
	printf '%s\n' '{"user_id":42,"action":"view","price":9.5}' \
	              '{"user_id":7,"action":"order","price":18000.5}' > events.jsonl
	fp-cat -r events.jsonl > events.frames
	[ "$(fp-cat events.frames)" = "$(cat events.jsonl)" ]
	[ "$(fp-cat --check events.frames)" = 'frames=2 data=2 control=0 bytes=83' ]
	[ "$(fp-cat events.frames | jq -c 'select(.action == "order")' | fp-cat -r | fp-cat)" = '{"user_id":7,"action":"order","price":18000.5}' ]
}
