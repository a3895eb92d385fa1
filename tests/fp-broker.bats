#!/usr/bin/env bats
# fp-broker: the mock cluster, its bootstrap address and its control FIFO.
load helper

@test "prints its bootstrap address, writes it to --bootstrap-file and stops on SIGTERM with 0" {
	start_broker --brokers 3 --topic t:5
	[[ $BROKER =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]]
	[ "$(cat "$T/broker.out")" = "$BROKER" ]
	kcat -L -b "$BROKER" -t t > "$T/md"
	grep -q '3 brokers:' "$T/md"
	grep -q 'topic "t" with 5 partitions' "$T/md"
	kill -TERM "$BROKER_PID"
	wait "$BROKER_PID"
}

@test "the control FIFO takes commands and answers on stderr" {
	start_broker --brokers 2 --topic t:2
	broker_ctl 'rtt 2 50'
	broker_ctl 'leader t 0 2'
	broker_ctl 'topic new 3'
	broker_ctl 'error Produce NOT_LEADER_FOR_PARTITION 2'
	broker_ctl 'clear Produce'
	broker_ctl 'down 2'
	broker_ctl 'up 2'
	broker_ctl 'frobnicate 1'
	broker_ctl 'down 9'
	broker_ctl 'error Bogus NOT_LEADER_FOR_PARTITION'
	broker_ctl 'error Fetch NO_SUCH_ERROR'
	wait_for grep -q "unknown error 'NO_SUCH_ERROR'" "$T/broker.err"
	cat > "$T/want" <<-'EOF'
	fp-broker: broker 2 rtt 50 ms
	fp-broker: 't' [0] leader is broker 2
	fp-broker: topic 'new' created with 3 partitions
	fp-broker: next 2 Produce request(s) fail with NOT_LEADER_FOR_PARTITION
	fp-broker: Produce errors cleared
	fp-broker: broker 2 down
	fp-broker: broker 2 up
	fp-broker: control: unknown command 'frobnicate' with 1 argument(s); commands: down ID, up ID, rtt ID MS, error API ERROR [COUNT], clear API, leader TOPIC PARTITION ID, topic NAME PARTITIONS
	fp-broker: control: down: bad broker id (1..2)
	fp-broker: control: unknown API 'Bogus' (e.g. Produce, Fetch, ListOffsets, Metadata, OffsetCommit, JoinGroup)
	fp-broker: control: unknown error 'NO_SUCH_ERROR' (e.g. NOT_LEADER_FOR_PARTITION)
	EOF
	diff -u "$T/want" "$T/broker.err"
	kcat -L -b "$BROKER" -t new | grep -q 'topic "new" with 3 partitions'
}

@test "a moved leader and retriable request errors lose nothing" {
	start_broker --brokers 3 --topic t:1
	seq 1 50 | fp-produce -q --lines -t t
	broker_ctl 'leader t 0 3'
	broker_ctl 'error Produce NOT_LEADER_FOR_PARTITION 3'
	broker_ctl 'error Fetch NOT_LEADER_FOR_PARTITION 2'
	wait_for grep -q 'Fetch request(s) fail' "$T/broker.err"
	seq 51 100 | fp-produce -q --lines -t t
	[ "$(fp-consume -q -t t -e -f '%s\n' | tr '\n' ' ')" = "$(seq 1 100 | tr '\n' ' ')" ]
}

@test "a non-retriable request error reaches the client" {
	start_broker --topic t:1
	broker_ctl 'error Produce MSG_SIZE_TOO_LARGE'
	wait_for grep -q 'Produce request(s) fail' "$T/broker.err"
	run fp-produce --lines -t t <<< 'x'
	[ "$status" -eq 4 ] && [[ $output == *"1 of 1 message(s) not delivered: Broker: Message size too large"* ]]
}

@test "a broker that goes down comes back on the same address" {
	start_broker --topic t:1
	broker_ctl 'down 1'
	wait_for grep -q 'broker 1 down' "$T/broker.err"
	run kcat -L -b "$BROKER" -m 1
	[ "$status" -ne 0 ]
	broker_ctl 'up 1'
	wait_for kcat -L -b "$BROKER" -m 1
}

@test "usage errors exit 2" {
	run fp-broker --topic nopartitions
	[ "$status" -eq 2 ] && [[ $output == *"--topic: expected name:partitions, got 'nopartitions'"* ]]
	run fp-broker --brokers 0
	[ "$status" -eq 2 ]
	touch "$T/plain"
	run fp-broker --control "$T/plain"
	[ "$status" -eq 2 ] && [[ $output == *"is not a FIFO"* ]]
}

@test "man page examples" {
	cd "$T"
	bg_start b fp-broker --topic views:4 --bootstrap-file broker.addr
	wait_for test -s broker.addr
	kcat -L -b "$(cat broker.addr)" -t views | grep -q 'topic "views" with 4 partitions'
	bg_start c fp-broker --topic t:2 --control ctl --bootstrap-file addr
	wait_for test -s addr
	echo 'error Fetch NOT_LEADER_FOR_PARTITION 3' > ctl
	wait_for grep -q 'next 3 Fetch request(s) fail' c.err
}
