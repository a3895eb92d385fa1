#!/usr/bin/env bats
# README command #1: make demo runs a real pipeline and shows features and lag.
load helper

@test "make demo: features in Redis, the hot-cars ranking, zero lag, nothing left running" {
	cd "$REPO_DIR"
	run env EVENTS=6000 USERS=300 CARS=50 scripts/demo
	echo "$output" | tail -30
	[ "$status" -eq 0 ]
	[[ $output == *'$ redis-cli HGETALL u:1'* ]]
	[[ $output =~ views_24h\ +[0-9]+ ]]
	[[ $output =~ top_brands\ +\[\[ ]]
	[[ $output == *'users with features: 300'* ]]
	[[ $output == *'$ redis-cli ZREVRANGE hot:all:hot_cars_10m 0 4 WITHSCORES'* ]]
	[[ $output =~ group\ demo:\ 10\ partitions,\ lag\ 0\ messages ]]
	[[ $output =~ fp-kvwrite-[01]:\ e2e\ p50\ [0-9.]+\ ms,\ p99\ [0-9.]+\ ms\;\ pipeline\ p50\ [0-9.]+\ ms ]]
	[[ $output == *'demo done'* ]]
	! pgrep -f 'featpipe-demo\.' >/dev/null
}
