#!/usr/bin/env bats
# fp-produce against a throwaway fp-broker.
load helper

@test "records are produced as JSON text, keyed by -k; control frames are not produced" {
	start_broker --topic ev:1
	fp-cat -r > "$T/in" <<-'EOF'
	{"user":"u1","n":1}
	{"@ctl":"barrier","@epoch":1,"@pos":[]}
	{"user":42,"n":2.5}
	{"user":null,"n":3}
	EOF
	run fp-produce -t ev -k user < "$T/in"
	[ "$status" -eq 0 ] && [ "$output" = "fp-produce: 3 message(s) delivered to 'ev'" ]
	fp-consume -q -t ev -e -f '%K %k %s\n' > "$T/got"
	printf '%s\n' '2 u1 {"user":"u1","n":1}' '2 42 {"user":42,"n":2.5}' '-1  {"user":null,"n":3}' > "$T/want"
	diff -u "$T/want" "$T/got"
}

@test "fp-consume | fp-produce copies keys, values, headers and timestamps" {
	start_broker --topic src:3 --topic copy:3
	for p in 0 1 2; do
		printf 'k%d:v%d\nk%d:\n' $p $p $p | kcat -P -b "$BROKER" -t src -p $p -K : -H h=$p
	done
	fp-consume -q -t src -e | fp-produce -q -t copy
	fmt='%k|%s|%S|%T|%h\n'
	fp-consume -q -t src -e -f "$fmt" | sort > "$T/want"
	fp-consume -q -t copy -e -f "$fmt" | sort > "$T/got"
	[ "$(wc -l < "$T/got")" -eq 6 ]
	diff -u "$T/want" "$T/got"
}

@test "--value msgpack, --value field:NAME and -p" {
	start_broker --topic v:2 --topic vm:1
	echo '{"id":7,"body":"hello","x":[1,2]}' | fp-cat -r > "$T/in"
	fp-produce -q -t v -p 1 --value field:body < "$T/in"
	fp-produce -q -t v -p 1 --value field:x < "$T/in"
	fp-produce -q -t vm --value msgpack < "$T/in"
	[ "$(fp-consume -q -t v -e -f '%p/%o %s\n' | grep '^1/')" = $'1/0 hello\n1/1 [1,2]' ]
	fp-consume -q -t vm -e -f '%s' > "$T/mp"
	cmp "$T/mp" <(tail -c +5 "$T/in")
}

@test "--lines produces one message per line" {
	start_broker --topic l:1
	printf 'a\nb b\n\nlast' | fp-produce -q --lines -t l -p 0
	[ "$(fp-consume -q -t l -e -f '[%s]')" = "[a][b b][][last]" ]
}

@test "a missing key field stops with exit 1 after delivering what came before" {
	start_broker --topic m:1
	printf '%s\n' '{"user":"a"}' '{"other":1}' '{"user":"c"}' | fp-cat -r > "$T/in"
	run fp-produce -t m -k user < "$T/in"
	[ "$status" -eq 1 ] && [[ $output == *"frame 2: no key field 'user'"* ]]
	[ "$(fp-consume -q -t m -e -f '%s\n')" = '{"user":"a"}' ]
}

@test "undelivered messages give exit 4 with a count" {
	start_broker --topic u:1
	broker_ctl 'down 1'
	wait_for grep -q 'broker 1 down' "$T/broker.err"
	run fp-produce -q --lines -t u -X message.timeout.ms=1000 < <(seq 3)
	[ "$status" -eq 4 ]
	[[ $output == *"3 of 3 message(s) not delivered: Local: Message timed out"* ]]
}

@test "JSON text where frames should be is bad data (exit 1)" {
	run fp-produce -b 127.0.0.1:1 -t x <<< '{"a":1}'
	[ "$status" -eq 1 ] && [[ $output == *"fp-cat -r"* ]]
}

@test "usage errors exit 2 with a reason" {
	run fp-produce -b 127.0.0.1:1
	[ "$status" -eq 2 ] && [[ $output == *"no topic given"* ]]
	run fp-produce -t x
	[ "$status" -eq 2 ] && [[ $output == *"no brokers given"* ]]
	run fp-produce -b 127.0.0.1:1 -t x --value yaml
	[ "$status" -eq 2 ] && [[ $output == *"--value: expected auto, json, msgpack or field:NAME"* ]]
	run fp-produce -b 127.0.0.1:1 -t x --lines -k id
	[ "$status" -eq 2 ] && [[ $output == *"--lines takes no -k"* ]]
	run fp-produce -b 127.0.0.1:1 -t x -p -3
	[ "$status" -eq 2 ]
}

@test "man page examples" {
	start_broker --topic numbers:2 --topic by-user:2
	run fp-produce --lines -t numbers < <(seq 1 100)
	[ "$status" -eq 0 ] && [ "$output" = "fp-produce: 100 message(s) delivered to 'numbers'" ]
	printf '%s\n' '{"user":"ann","a":1}' '{"user":"bob","a":2}' '{"user":"ann","a":3}' > "$T/events.jsonl"
	fp-cat -r "$T/events.jsonl" | fp-produce -q -t by-user -k user
	# one key, one partition
	[ "$(fp-consume -q -t by-user -e -f '%k %p\n' | sort -u | wc -l)" -eq 2 ]
}
