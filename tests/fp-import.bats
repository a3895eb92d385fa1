#!/usr/bin/env bats
# fp-import: raw message frames (or plain lines) -> behaviour records, per a
# data dictionary.  No Kafka or Redis needed.
load helper

F="$TESTS_DIR/fixtures/fp-import"
DICT="$F/shop.fpd"

# raw_frames TOPIC FILE: each line of FILE becomes the value of a raw message
# frame as fp-consume writes it: @src [TOPIC, 0, line number], @ts 1000*line,
# @in 1.
raw_frames() {
	jq -R -c --arg t "$1" '{"@src":[$t,0,input_line_number],"@ts":(1000*input_line_number),
		"@in":1,"key":null,"value":{"@bin":.}}' "$2" | fp-cat -r
}

# import TOPIC FILE [fp-import args...]: FILE's lines through raw frames and
# fp-import -d $DICT; records as JSON lines in $T/out, stderr in $T/err.
import() {
	local topic=$1 file=$2
	shift 2
	raw_frames "$topic" "$file" > "$T/in.frames"
	fp-import -d "$DICT" "$@" "$T/in.frames" > "$T/out.frames" 2> "$T/err"
	local rc=$?
	fp-cat "$T/out.frames" > "$T/out"
	return $rc
}

# dict_error TEXT: the error fp-import --check prints for dictionary TEXT.
dict_error() {
	printf '%s\n' "$1" > "$T/d.dict"
	run fp-import -d "$T/d.dict" --check
	[ "$status" -eq 2 ] || { echo "status $status: $output"; return 1; }
}

@test "JSON: nested paths, array index, coercion, defaults, constants, where" {
	import views "$F/views.jsonl"
	cat > "$T/want" <<'EOF'
{"@src":["views",0,1],"@ts":1000,"@in":1,"user_id":42,"item":7,"action":"view","price":9.5,"ts":1700000000000,"mobile":true,"tag":"new","site":"web"}
{"@src":["views",0,2],"@ts":2000,"@in":1,"user_id":43,"item":8,"action":"order","price":19.9,"ts":1700000001500,"mobile":false,"site":"web"}
{"@src":["views",0,3],"@ts":3000,"@in":1,"user_id":44,"item":9,"action":"view","price":0.0,"ts":1700000002000,"site":"web"}
{"@src":["views",0,5],"@ts":5000,"@in":1,"user_id":46,"item":10,"action":"view","price":0.0,"ts":1700000004000,"site":"web"}
EOF
	diff -u "$T/want" "$T/out"
	grep -q '^fp-import: 5 messages, 4 records, 1 filtered, 0 dropped, 0 dead letters$' "$T/err"
}

@test "a topic pattern selects the source; an unknown topic is a dead letter" {
	import web.views.eu "$F/views.jsonl"
	[ "$(wc -l < "$T/out")" -eq 4 ]
	run import nosuch "$F/views.jsonl"
	[ "$status" -eq 0 ]
	[ ! -s "$T/out" ]
	grep -q "^fp-import: nosuch/0/1: no source in the dictionary for topic 'nosuch'$" "$T/err"
}

@test "CSV with a column list: RFC 4180 quoting, column numbers, time in seconds" {
	import orders "$F/orders.csv"
	cat > "$T/want" <<'EOF'
{"@src":["orders",0,1],"@ts":1000,"@in":1,"ts":1700000000000,"user_id":42,"item":7,"qty":2,"price":9.5}
{"@src":["orders",0,3],"@ts":3000,"@in":1,"ts":1700000002000,"user_id":44,"item":9,"qty":1}
EOF
	diff -u "$T/want" "$T/out"
	grep -q "orders/0/2: field 'price' (from price): \"1,250.00\" is not a float" "$T/err"
}

@test "CSV quoting: doubled quotes, separators inside quotes, bad quoting" {
	printf '%s\n' 'source q' 'format csv' 'columns a,b' 'field a string' 'field b string' > "$T/q.dict"
	printf '%s\n' '"say ""hi""","x,y"' '"open,b' '"a"x,b' > "$T/q.csv"
	fp-import -d "$T/q.dict" --lines -s q "$T/q.csv" 2> "$T/err" | fp-cat > "$T/out"
	[ "$(jq -c '[.a,.b]' "$T/out")" = '["say \"hi\"","x,y"]' ]
	grep -q 'q.csv:2: bad csv: unterminated quoted field at column 1' "$T/err"
	grep -q "q.csv:3: bad csv: unexpected 'x' after a quoted field at column 4" "$T/err"
}

@test "TSV with a header line in --lines mode" {
	cd "$F"
	fp-import -d "$DICT" --lines -s clicks clicks.tsv 2> "$T/err" | fp-cat |
		jq -c 'del(.["@in"])' > "$T/out"
	cat > "$T/want" <<'EOF'
{"@src":["clicks.tsv",0,2],"@ts":1700000000000,"user_id":42,"url":"/cars/7","at":1700000000000}
{"@src":["clicks.tsv",0,3],"@ts":1700000001000,"user_id":43,"url":"/cars/8?q=a,b","at":1700000001000}
EOF
	diff -u "$T/want" "$T/out"
}

@test "a header source in stream mode: dead letters that say why" {
	import clicks "$F/clicks.tsv"
	[ ! -s "$T/out" ]
	grep -q "clicks/0/1: source 'clicks' takes its columns from a header line, which only --lines reads" "$T/err"
}

@test "key=value (logfmt): quoted values, escapes, ISO-8601 with an offset" {
	import applog "$F/applog.kv"
	cat > "$T/want" <<'EOF'
{"@src":["applog",0,1],"@ts":1000,"@in":1,"user_id":42,"level":"info","msg":"opened the app","at":1699996400000}
{"@src":["applog",0,2],"@ts":2000,"@in":1,"user_id":43,"level":"warn","msg":"slow \"search\"","at":1700000001000}
EOF
	diff -u "$T/want" "$T/out"
}

@test "explode: one record per element, @src extended with the index, filter per element" {
	import exposures "$F/exposures.jsonl"
	cat > "$T/want" <<'EOF'
{"@src":["exposures",0,1,0],"@ts":1000,"@in":1,"user_id":42,"item_id":1,"pos":0,"ts":1700000000000}
{"@src":["exposures",0,1,1],"@ts":1000,"@in":1,"user_id":42,"item_id":2,"pos":1,"ts":1700000000000}
{"@src":["exposures",0,1,2],"@ts":1000,"@in":1,"user_id":42,"item_id":3,"pos":2,"ts":1700000000000}
EOF
	diff -u "$T/want" "$T/out"
	grep -q '2 messages, 3 records, 1 filtered, 0 dropped, 0 dead letters' "$T/err"
}

@test "explode: a bad element makes the whole message a dead letter" {
	printf '%s\n' '{"uid":1,"items":[{"id":1},{"id":"x"}]}' '{"uid":2,"items":"no"}' \
		'{"uid":3}' > "$T/ex.jsonl"
	import exposures "$T/ex.jsonl" --dead-letter "$T/dead"
	[ ! -s "$T/out" ]
	fp-cat "$T/dead" | jq -r '.reason' > "$T/reasons"
	cat > "$T/want" <<'EOF'
items[1]: field 'item_id' (from item.id): "x" is not an int
explode: 'items' is not an array
explode: 'items' is missing
EOF
	diff -u "$T/want" "$T/reasons"
}

@test "several shapes on one topic: dispatch, shape filters, drop, no shape" {
	printf '%s\n' '{"type":"click","uid":1}' '{"uid":2}' >> "$T/ev.jsonl"
	cat "$F/events.jsonl" "$T/ev.jsonl" > "$T/all.jsonl"
	import events "$T/all.jsonl"
	cat > "$T/want" <<'EOF'
{"@src":["events",0,1],"@ts":1000,"@in":1,"user_id":42,"kind":"view","item_id":7}
{"@src":["events",0,2],"@ts":2000,"@in":1,"user_id":42,"kind":"order","amount":19.5}
{"@src":["events",0,5],"@ts":5000,"@in":1,"user_id":43,"kind":"view","item_id":8}
EOF
	diff -u "$T/want" "$T/out"
	grep -q 'events/0/6: no shape for type = "click"' "$T/err"
	grep -q "events/0/7: no shape: 'type' is missing" "$T/err"
	grep -q '7 messages, 3 records, 1 filtered, 1 dropped, 2 dead letters' "$T/err"
}

@test "when * takes every other shape" {
	printf '%s\n' 'source e' 'format json' 'shape by t' 'field t int' 'when 1' \
		'field a string' 'when *' 'field b string' > "$T/s.dict"
	printf '%s\n' '{"t":1,"a":"x","b":"y"}' '{"t":2,"a":"x","b":"y"}' '{"a":"x","b":"y"}' > "$T/s.jsonl"
	fp-import -d "$T/s.dict" --lines -s e "$T/s.jsonl" 2>/dev/null | fp-cat |
		jq -c 'del(.["@in"],.["@ts"],.["@src"])' > "$T/out"
	printf '%s\n' '{"t":1,"a":"x"}' '{"t":2,"b":"y"}' '{"b":"y"}' | diff -u - "$T/out"
}

@test "dead letters keep the raw frame, its @src and a reason; counted on stderr" {
	import views "$F/backfill.jsonl" --dead-letter "$T/dead"
	[ "$(wc -l < "$T/out")" -eq 2 ]
	fp-cat "$T/dead" > "$T/dead.json"
	[ "$(wc -l < "$T/dead.json")" -eq 2 ]
	[ "$(jq -c '.["@src"]' "$T/dead.json" | tr '\n' ' ')" = '["views",0,3] ["views",0,5] ' ]
	[ "$(jq -r '.reason' "$T/dead.json" | head -1)" = "field 'item' (from item_id): \"x\" is not an int" ]
	[[ "$(jq -r '.reason' "$T/dead.json" | tail -1)" == "bad JSON at column 9: "* ]]
	[ "$(jq -r '.value["@bin"]' "$T/dead.json" | tail -1)" = '{"user":' ]
	grep -q '^fp-import: 5 messages, 2 records, 1 filtered, 0 dropped, 2 dead letters$' "$T/err"
	# the dead letters are raw message frames again: fixed, they replay
	fp-import -d "$DICT" "$T/dead" 2>&1 >/dev/null | grep -q '2 dead letters'
	# appended, never truncated
	import views "$F/backfill.jsonl" --dead-letter "$T/dead"
	[ "$(fp-cat "$T/dead" | wc -l)" -eq 4 ]
}

@test "--strict: the first dead letter is fatal (exit 1), records before it are kept" {
	run import views "$F/backfill.jsonl" --strict
	[ "$status" -eq 1 ]
	[ "$(wc -l < "$T/out")" -eq 1 ]
	grep -q "views/0/3: field 'item' (from item_id): \"x\" is not an int" "$T/err"
}

@test "failing to write a dead letter is fatal (exit 3)" {
	[ -w /dev/full ] || skip "no /dev/full"
	run import views "$F/backfill.jsonl" --dead-letter /dev/full
	[ "$status" -eq 3 ]
	grep -q "error writing dead letters to '/dev/full': No space left on device" "$T/err"
}

@test "frames that are not raw messages are dead letters, control frames pass in order" {
	printf '%s\n' '{"@src":["views",0,1],"@ts":1,"headers":[["h",{"@bin":"x"}]],"value":{"@bin":"{\"user\":{\"id\":1},\"item_id\":2,\"action\":\"v\"}"}}' \
		'{"@ctl":"barrier","@epoch":1,"@pos":[["views",0,2]]}' \
		'{"hello":1}' '{"@src":["views",0,2],"value":null}' \
		'{"@src":["views",0,3],"value":"{\"user\":{\"id\":3},\"item_id\":4,\"action\":\"v\"}"}' \
		'{"@ctl":"other"}' > "$T/in.jsonl"
	fp-cat -r "$T/in.jsonl" | fp-import -d "$DICT" 2> "$T/err" | fp-cat > "$T/out"
	cat > "$T/want" <<'EOF'
{"@src":["views",0,1],"@ts":1,"user_id":1,"item":2,"action":"v","price":0.0,"site":"web"}
{"@ctl":"barrier","@epoch":1,"@pos":[["views",0,2]]}
{"@src":["views",0,3],"user_id":3,"item":4,"action":"v","price":0.0,"site":"web"}
{"@ctl":"other"}
EOF
	diff -u "$T/want" "$T/out"
	grep -q 'frame: not a raw message frame: no @src' "$T/err"
	grep -q 'views/0/2: no value (nil, or not binary or a string)' "$T/err"
}

@test "a broken frame stream stops with exit 1 after writing what came before" {
	raw_frames views "$F/views.jsonl" > "$T/in.frames"
	head -c -3 "$T/in.frames" > "$T/cut.frames"
	run fp-import -d "$DICT" "$T/cut.frames"
	[ "$status" -eq 1 ]
	[[ $output == *"cut.frames: "*"truncated"* ]]
}

@test "an invalid frame inside the stream stops with exit 1, naming frame and offset" {
	raw_frames views "$F/views.jsonl" > "$T/in.frames"
	# frame 6: a map whose key is an integer; frame 7: one byte too many
	printf '\000\000\000\003\201\001\002' >> "$T/in.frames"
	run fp-import -d "$DICT" "$T/in.frames"
	[ "$status" -eq 1 ]
	[[ $output == *"in.frames: frame 6 at offset "*": map key at byte 1 is not a string"* ]]
	printf '\000\000\000\003\201\241a' > "$T/short.frames"
	run fp-import -d "$DICT" "$T/short.frames"
	[ "$status" -eq 1 ]
	[[ $output == *"short.frames: frame 1 at offset 0: "* ]]
	# records before the bad frame were written
	fp-import -d "$DICT" "$T/in.frames" 2>/dev/null | fp-cat | wc -l | grep -qx 4
}

@test "--lines gives the same records as stream mode on the same data" {
	# from stdin, @src is [source name, 0, line number]
	fp-import -d "$DICT" --lines -s views --dead-letter "$T/dl1" < "$F/backfill.jsonl" 2>/dev/null |
		fp-cat | jq -c 'del(.["@in"])' > "$T/lines"
	# the same lines as raw frames of topic "views", @ts from "ts"
	jq -R -c '{"@src":["views",0,input_line_number],
		"@ts":(try (fromjson.ts) catch 0),"value":{"@bin":.}}' "$F/backfill.jsonl" |
		fp-cat -r | fp-import -d "$DICT" --dead-letter "$T/dl2" 2>/dev/null | fp-cat |
		jq -c . > "$T/stream"
	[ -s "$T/lines" ]
	diff -u "$T/stream" "$T/lines"
	diff -u <(fp-cat "$T/dl2" | jq -c '[.["@src"], .reason]') <(fp-cat "$T/dl1" | jq -c '[.["@src"], .reason]')
}

@test "--lines on stdin names the source in @src; blank lines are skipped" {
	printf '\n{"uid":7,"type":"view","item_id":1}\n' |
		fp-import -d "$DICT" --lines -s events 2>/dev/null | fp-cat > "$T/out"
	[ "$(jq -c '.["@src"]' "$T/out")" = '["events",0,2]' ]
}

@test "--infer proposes a JSON entry that -d accepts and that imports the samples" {
	fp-import --infer -s web < "$F/samples.jsonl" > "$T/web.dict"
	grep -q '^  field user_id   int    from user.id required$' "$T/web.dict"
	grep -q '^  field price     float  required$' "$T/web.dict"
	grep -q '^  field ts        time   required$' "$T/web.dict"
	grep -q '^  field at        time   required$' "$T/web.dict"
	grep -q '^  field mobile    bool$' "$T/web.dict"
	grep -q '^  time ts$' "$T/web.dict"
	run fp-import -d "$T/web.dict" --check
	[ "$status" -eq 0 ]
	fp-import -d "$T/web.dict" --lines -s web "$F/samples.jsonl" 2> "$T/err" | fp-cat > "$T/out"
	grep -q '3 messages, 3 records, 0 filtered, 0 dropped, 0 dead letters' "$T/err"
}

@test "--infer on CSV with a header" {
	fp-import --infer -s orders "$F/samples.csv" > "$T/o.dict"
	grep -q '^  field ts      time(s) required$' "$T/o.dict"
	grep -q '^  field ok      bool    required$' "$T/o.dict"
	fp-import -d "$T/o.dict" --check
	fp-import -d "$T/o.dict" --lines -s orders "$F/samples.csv" 2>/dev/null | fp-cat > "$T/out"
	[ "$(jq -c '[.ts,.city,.price]' "$T/out" | head -1)" = '[1700000000000,"Lyon",9.5]' ]
}

@test "dictionary errors name file:line:column and what was expected" {
	dict_error 'field x int'
	[[ $output == *"d.dict:1:1: expected 'source NAME' to begin a source, found 'field'" ]]
	dict_error $'source a\n  field x integer'
	[[ $output == *"d.dict:2:11: expected a type (string, int, float, bool, time, time(ms), time(s) or any), found 'integer'" ]]
	dict_error $'source a\n  format xml'
	[[ $output == *"d.dict:2:10: expected json, csv, tsv or kv, found 'xml'" ]]
	dict_error $'source a\n  field x int\n  field x string'
	[[ $output == *"d.dict:3:9: field 'x' is already defined in this source" ]]
	dict_error $'source a\n  field n int default abc'
	[[ $output == *"d.dict:2:23: default \"abc\" is not an int" ]]
	dict_error $'source a\n  where price >'
	[[ $output == *"d.dict:2:16: "* ]]
	dict_error $'source a\n  field p float required default 1'
	[[ $output == *"d.dict:2:26: a field is either required or has a default, not both" ]]
	dict_error $'source a\n  when "x"'
	[[ $output == *"d.dict:2:3: 'when' needs a 'shape by FIELD' line before it" ]]
	dict_error $'source a\n  format csv\n  field x int'
	[[ $output == *"d.dict:3:9: field 'x' has no 'from' and no column has its name" ]]
	dict_error $'source a\n  format csv\n  columns a,b\n  field c int'
	[[ $output == *"d.dict:4:9: field 'c' has no 'from' and no column has its name" ]]
	dict_error $'source a\n  format kv\n  explode items'
	[[ $output == *"d.dict:3:3: 'explode' needs format json" ]]
	dict_error $'source a\n  field t int\n  time t'
	[[ $output == *"d.dict:1:1: source 'a': 'time t' names no field of type time" ]]
	dict_error $'source a\n  field @x int'
	[[ $output == *"d.dict:2:9: expected a field name"* ]]
	dict_error $'source a\nsource a'
	[[ $output == *"d.dict:2:8: source 'a' is already defined on line 1" ]]
	dict_error $'source a\n  field x string from a..b'
	[[ $output == *"d.dict:2:25: expected a field name, found '.b'" ]]
	dict_error $'source a\n  field x string unknown'
	[[ $output == *"d.dict:2:18: expected 'from', 'required', 'default' or '=', found 'unknown'" ]]
	dict_error '# nothing'
	[[ $output == *"d.dict: the dictionary defines no source" ]]
	run fp-import -d "$T/missing.dict" --check
	[ "$status" -eq 2 ]
	[[ $output == *"unable to open '$T/missing.dict': No such file or directory" ]]
}

@test "usage errors exit 2" {
	run fp-import --lines
	[ "$status" -eq 2 ]
	run fp-import -d "$DICT" --lines
	[ "$status" -eq 2 ]
	[[ $output == *"--lines needs -s source"* ]]
	run fp-import -d "$DICT" --lines -s nosuch /dev/null
	[ "$status" -eq 2 ]
	[[ $output == *"no source 'nosuch' in"* ]]
	run fp-import -d "$DICT" -s views
	[ "$status" -eq 2 ]
}

@test "man page examples" {
	cd "$F"
	# Check a dictionary
	run fp-import -d shop.fpd --check
	[ "$output" = "shop.fpd: 6 sources" ]
	# Backfill from files
	fp-import -d shop.fpd --lines -s orders orders.csv --dead-letter "$T/orders.dead" 2>/dev/null |
		fp-cat > "$T/out"
	[ "$(wc -l < "$T/out")" -eq 2 ]
	[ "$(fp-cat "$T/orders.dead" | jq -r .reason)" = "field 'price' (from price): \"1,250.00\" is not a float" ]
	# Propose an entry from samples
	fp-import --infer -s web < samples.jsonl | grep -q '^source web$'
}

@test "the example in fp-dictionary(5) is a valid dictionary" {
	sed -n '/^\.Sh EXAMPLES/,/^\.Ed/p' "$REPO_DIR/man/fp-dictionary.5" | sed '1,2d;$d' > "$T/ex.fpd"
	grep -q '^source events' "$T/ex.fpd"
	run fp-import -d "$T/ex.fpd" --check
	[ "$status" -eq 0 ]
	[ "$output" = "$T/ex.fpd: 4 sources" ]
}

@test "a dead letter too large for a frame keeps @src and reason, not the bytes" {
	printf '{"user":{"id":1},"item_id":"%s","action":"v"}\n' "$(printf 'x%.0s' $(seq 2000))" > "$T/big.jsonl"
	fp-import -d "$DICT" --lines -s views --max-frame 1K --dead-letter "$T/dead" "$T/big.jsonl" \
		> /dev/null 2> "$T/err"
	grep -q 'big.jsonl:1: the dead letter is too large for a frame; written without its bytes' "$T/err"
	[ "$(fp-cat "$T/dead" | jq -c '[.["@src"][2], (.reason | startswith("field '"'item'"'")), has("value")]')" = '[1,true,false]' ]
}
