#!/usr/bin/python3
"""End-to-end latency probe of `make bench` (run by scripts/bench).

  bench_latency.py feed -b BROKERS --rate N --seconds S --data DIR --sent FILE
      Offers N messages/s for S seconds to the four used-car topics through
      four `fp-produce --lines` processes (one per topic), taking lines from
      DIR/TOPIC.txt in their proportions (cycling), and every --probe-ms writes
      one probe view of a fresh user (9000000000 + i) whose send time (wall
      clock, after the write to fp-produce's pipe) goes to FILE as "i µs".
      Before the measured window, one message per topic and --warmup seconds
      let the producers connect and fetch their metadata.
      Prints "offered achieved_rate messages seconds cpu_seconds" (the CPU of
      this feeder and its fp-produce processes).
  bench_latency.py watch -r REDIS_URL --seen FILE
      Subscribes to the keyspace events of the probe keys (the caller sets
      notify-keyspace-events Kn: key creation) and writes "i µs" to FILE when a probe user's
      hash is first written -- when fp-kvwrite's commit made it visible.
      Stops on SIGTERM.
  bench_latency.py report --sent FILE --seen FILE --hist OUT [--series OUT2]
      Joins the two, prints "probes seen p50 p90 p99 max" in ms and writes a
      histogram to OUT for gnuplot: "ms share" per log-spaced bin (20 a decade);
      with --series, every probe as "seconds-since-the-first latency-ms" (-1:
      not seen) to OUT2.
"""
import argparse
import math
import os
import resource
import signal
import subprocess
import sys
import time

TOPICS = ("views", "favourites", "calls", "orders")
PROBE_BASE = 9000000000


def feed(a):
    lines, weight = {}, {}
    for t in TOPICS:
        with open(os.path.join(a.data, t + ".txt"), "rb") as f:
            lines[t] = f.read().splitlines(keepends=True)
        weight[t] = len(lines[t])
    total = sum(weight.values())
    share = {t: weight[t] / total for t in TOPICS}
    procs, fds = {}, {}
    for t in TOPICS:
        procs[t] = subprocess.Popen(["fp-produce", "--lines", "-q", "-b", a.brokers, "-t", t,
                                     "-X", "linger.ms=%d" % a.linger_ms],
                                    stdin=subprocess.PIPE, bufsize=0)
        fds[t] = procs[t].stdin.fileno()
    # warm-up: one message per topic, then wait, so that the producers have
    # their metadata and connections before the measured window
    for t in TOPICS:
        os.write(fds[t], lines[t][0])
    time.sleep(a.warmup)
    pos = {t: 1 for t in TOPICS}
    done = {t: 0 for t in TOPICS}
    sent = open(a.sent, "w")
    probe = 0
    t0 = time.monotonic()
    next_probe = t0
    end = t0 + a.seconds
    msgs = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        el = now - t0
        for t in TOPICS:
            want = int(a.rate * share[t] * el) - done[t]
            if want <= 0:
                continue
            ls, p = lines[t], pos[t]
            chunk = ls[p:p + want]
            while len(chunk) < want:            # cycle through the file
                chunk += ls[:want - len(chunk)]
            pos[t] = (p + want) % len(ls)
            os.write(fds[t], b"".join(chunk))
            done[t] += want
            msgs += want
        while now >= next_probe:  # all that are due, if a tick came late
            ms = int(time.time() * 1000)
            line = ('{"event":"view","user":{"id":%d},"car":{"id":"c00001","brand":"bmw",'
                    '"price":1000},"city":"berlin","ts":%d}\n' % (PROBE_BASE + probe, ms))
            os.write(fds["views"], line.encode())
            sent.write("%d %d\n" % (probe, int(time.time() * 1e6)))
            probe += 1
            msgs += 1
            next_probe += a.probe_ms / 1000.0
        time.sleep(a.tick_ms / 1000.0)
    el = time.monotonic() - t0
    sent.close()
    for t in TOPICS:
        procs[t].stdin.close()
    rc = 0
    for t in TOPICS:
        rc |= procs[t].wait()
    # CPU seconds of this feeder and its fp-produce children (now reaped)
    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(r.ru_utime + r.ru_stime for r in ru)
    print("%d %.0f %d %.3f %.2f" % (a.rate, msgs / el, msgs, el, cpu))
    return 1 if rc else 0


def watch(a):
    import redis
    r = redis.Redis.from_url(a.redis)
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.psubscribe("__keyspace@*__:u:9?????????")
    out = open(a.seen, "w")
    seen = set()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    ready = open(a.seen + ".ready", "w")
    ready.close()
    while not stop:
        m = ps.get_message(timeout=0.2)
        if not m:
            continue
        us = int(time.time() * 1e6)
        ch = m["channel"].decode()
        i = int(ch.rsplit(":", 1)[1]) - PROBE_BASE
        if i not in seen:
            seen.add(i)
            out.write("%d %d\n" % (i, us))
            out.flush()
    out.close()
    return 0


def pct(v, q):
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def report(a):
    sent = dict(map(int, l.split()) for l in open(a.sent))
    seen = dict(map(int, l.split()) for l in open(a.seen))
    if a.series:
        # every probe in the order sent: seconds since the first, latency in ms
        # (-1: not seen), to see when the slow ones happened
        t0 = min(sent.values())
        with open(a.series, "w") as f:
            for i in sorted(sent):
                f.write("%.3f %.1f\n" % ((sent[i] - t0) / 1e6,
                                         (seen[i] - sent[i]) / 1000.0 if i in seen else -1))
    lat = sorted((seen[i] - sent[i]) / 1000.0 for i in sent if i in seen)
    if not lat:
        print("0 0 nan nan nan nan")
        return 1
    print("%d %d %.1f %.1f %.1f %.1f" % (len(sent), len(lat), pct(lat, 0.5), pct(lat, 0.9),
                                        pct(lat, 0.99), lat[-1]))
    # log-spaced bins, 20 per decade from 0.1 ms: share of the probes per bin
    hist = {}
    for x in lat:
        b = int(math.floor(20 * math.log10(max(x, 0.1) / 0.1)))
        hist[b] = hist.get(b, 0) + 1
    with open(a.hist, "w") as f:
        for b in range(min(hist) - 1, max(hist) + 2):
            f.write("%.4g %.5f\n" % (0.1 * 10 ** ((b + 0.5) / 20), hist.get(b, 0) / len(lat)))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("feed")
    p.add_argument("-b", "--brokers", required=True)
    p.add_argument("--rate", type=int, default=100000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--data", required=True)
    p.add_argument("--sent", required=True)
    p.add_argument("--probe-ms", type=float, default=5)
    p.add_argument("--linger-ms", type=int, default=5)
    p.add_argument("--tick-ms", type=float, default=2)
    p.add_argument("--warmup", type=float, default=3)
    p = sub.add_parser("watch")
    p.add_argument("-r", "--redis", required=True)
    p.add_argument("--seen", required=True)
    p = sub.add_parser("report")
    p.add_argument("--sent", required=True)
    p.add_argument("--seen", required=True)
    p.add_argument("--hist", required=True)
    p.add_argument("--series")
    a = ap.parse_args()
    return {"feed": feed, "watch": watch, "report": report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
