#!/usr/bin/python3
"""The Python baseline of `make bench`: what a user would write instead of featpipe.

Reads the used-car topics (views JSON, favourites CSV, calls logfmt, orders JSON
with several items) with confluent-kafka, parses them as examples/used_car/
dictionary.fpd does, computes the features of examples/used_car/user.fp (same
windows, buckets and values; see fp-features(5)) in a dict per user, and writes
each changed user as a Redis hash (HSET + EXPIRE, pipelined, once per batch of
messages).  It keeps its state in memory only and stores no offsets: it does
less than featpipe (no exactly-once, no @state, no restart), which favours it.

  bench_baseline.py run -b BROKERS -r REDIS_URL [--batch N]
      consume every partition of the four topics from the beginning to the end,
      write the features, print "messages records seconds" on stdout.
  bench_baseline.py compare REDIS_URL_A REDIS_URL_B [--sample N]
      compare the feature hashes u:* of two Redis databases (numbers with a
      relative tolerance of 1e-9); print the differences, exit 1 if any.

Uses Debian's python3-confluent-kafka and python3-redis (run it with /usr/bin/python3).
"""
import argparse
import csv
import datetime
import json
import sys
import time

import redis
from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING

TOPICS = ("views", "favourites", "calls", "orders")
PREFIX = "u:"
TTL = 30 * 86400
MIN, HOUR = 60000, 3600000
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
FEATURES = ("views_1h", "views_24h", "favs_7d", "calls_7d", "spend", "price_avg_7d",
            "price_max", "recent_cars", "top_brands", "uniq_cars_1d", "last_city",
            "first_seen")

# ---- parsing: the four sources of dictionary.fpd ------------------------------------


def iso_ms(s):
    d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (d - EPOCH) // datetime.timedelta(milliseconds=1)


def parse(topic, v):
    """One Kafka message value (bytes) -> list of records (dicts), [] when rejected."""
    if topic == "views":
        m = json.loads(v)
        u, car = m.get("user") or {}, m.get("car") or {}
        if "id" not in u or "id" not in car or "ts" not in m:
            return []
        return [{"user_id": int(u["id"]), "action": "view", "car_id": str(car["id"]),
                 "brand": car.get("brand"), "price": car.get("price"),
                 "city": m.get("city"), "ts": int(m["ts"])}]
    if topic == "favourites":
        row = next(csv.reader([v.decode()]))
        if len(row) < 5 or not row[0] or not row[1] or not row[4]:
            return []
        return [{"user_id": int(row[0]), "action": "favourite", "car_id": row[1],
                 "brand": row[2] or None, "price": int(row[3]) if row[3] else None,
                 "ts": int(row[4]) * 1000}]
    if topic == "calls":
        kv = dict(p.split("=", 1) for p in v.decode().split() if "=" in p)
        if "user" not in kv or "car" not in kv or "at" not in kv:
            return []
        return [{"user_id": int(kv["user"]), "action": "call", "car_id": kv["car"],
                 "brand": kv.get("brand"), "city": kv.get("city"),
                 "ts": iso_ms(kv["at"])}]
    if topic == "orders":
        m = json.loads(v)
        if "uid" not in m or "ts" not in m:
            return []
        out = []
        for it in m.get("items") or []:
            if "car" not in it:
                continue
            out.append({"user_id": int(m["uid"]), "action": "order", "car_id": str(it["car"]),
                        "brand": it.get("brand"), "price": it.get("price"), "ts": int(m["ts"])})
        return out
    return []

# ---- features: examples/used_car/user.fp -------------------------------------------


class User:
    __slots__ = ("now", "v1h", "v24h", "fav7d", "call7d", "spend", "avg7d", "pmax",
                 "recent", "brands", "cars1d", "city", "first")

    def __init__(self):
        self.now = None
        self.v1h, self.v24h, self.fav7d, self.call7d = {}, {}, {}, {}  # bucket -> count
        self.spend = 0
        self.avg7d = {}          # bucket -> [sum, n]
        self.pmax = None
        self.recent = []         # [(ts, car)] newest first, at most 20
        self.brands = {}         # bucket -> {brand: n}
        self.cars1d = {}         # bucket -> set(car)
        self.city = None         # (ts, city)
        self.first = None


def inwin(buckets, now, width, n):
    """The items of a bucket dict whose bucket is among the n ending at now's."""
    lo = now // width - n + 1
    return [(b, x) for b, x in buckets.items() if b >= lo]


def late(ts, now, width, n):
    return now is not None and ts // width < now // width - n + 1


def prune(buckets, now, width, n):
    lo = now // width - n + 1
    for b in [b for b in buckets if b < lo]:
        del buckets[b]


def apply(u, r):
    ts, act = r["ts"], r["action"]
    if u.now is None or ts > u.now:
        u.now = ts
    now = u.now
    car, brand, price, city = r.get("car_id"), r.get("brand"), r.get("price"), r.get("city")
    if act == "view":
        for d, w, n in ((u.v1h, MIN, 60), (u.v24h, HOUR, 24)):
            if not late(ts, now, w, n):
                d[ts // w] = d.get(ts // w, 0) + 1
        if isinstance(price, int):
            if not late(ts, now, HOUR, 168):
                s = u.avg7d.setdefault(ts // HOUR, [0, 0])
                s[0] += price
                s[1] += 1
            if u.pmax is None or price > u.pmax:
                u.pmax = price
        if car is not None:
            rc = u.recent
            rc.append((ts, car))
            rc.sort(reverse=True)
            del rc[20:]
    elif act == "favourite":
        if not late(ts, now, HOUR, 168):
            u.fav7d[ts // HOUR] = u.fav7d.get(ts // HOUR, 0) + 1
    elif act == "call":
        if not late(ts, now, HOUR, 168):
            u.call7d[ts // HOUR] = u.call7d.get(ts // HOUR, 0) + 1
    elif act == "order":
        if isinstance(price, int):
            u.spend += price
    if brand is not None and not late(ts, now, HOUR, 168):
        b = u.brands.setdefault(ts // HOUR, {})
        b[brand] = b.get(brand, 0) + 1
    if car is not None and not late(ts, now, HOUR, 24):
        u.cars1d.setdefault(ts // HOUR, set()).add(car)
    if city is not None and (u.city is None or (ts, city) > u.city):
        u.city = (ts, city)
    if u.first is None or ts < u.first:
        u.first = ts


def values(u):
    """The hash fields of a user: decimal text, JSON arrays, None for nil (HDEL)."""
    now = u.now
    for d, w, n in ((u.v1h, MIN, 60), (u.v24h, HOUR, 24), (u.fav7d, HOUR, 168),
                    (u.call7d, HOUR, 168), (u.avg7d, HOUR, 168), (u.brands, HOUR, 168),
                    (u.cars1d, HOUR, 24)):
        prune(d, now, w, n)
    s = n = 0
    for x in u.avg7d.values():
        s += x[0]
        n += x[1]
    tb = {}
    for b in u.brands.values():
        for k, c in b.items():
            tb[k] = tb.get(k, 0) + c
    top = sorted(tb.items(), key=lambda kc: (-kc[1], kc[0]))[:5]
    cars = set()
    for c in u.cars1d.values():
        cars |= c
    return {
        "views_1h": str(sum(u.v1h.values())),
        "views_24h": str(sum(u.v24h.values())),
        "favs_7d": str(sum(u.fav7d.values())),
        "calls_7d": str(sum(u.call7d.values())),
        "spend": str(u.spend),
        "price_avg_7d": repr(s / n) if n else None,
        "price_max": str(u.pmax) if u.pmax is not None else None,
        "recent_cars": json.dumps([c for _, c in u.recent], separators=(",", ":")),
        "top_brands": json.dumps([[k, c] for k, c in top], separators=(",", ":")),
        "uniq_cars_1d": str(len(cars)),
        "last_city": u.city[1] if u.city else None,
        "first_seen": str(u.first) if u.first is not None else None,
    }


def write(r, users, dirty):
    p = r.pipeline(transaction=False)
    for uid in dirty:
        vals = values(users[uid])
        key = PREFIX + str(uid)
        p.hset(key, mapping={k: v for k, v in vals.items() if v is not None})
        nil = [k for k, v in vals.items() if v is None]
        if nil:
            p.hdel(key, *nil)
        p.expire(key, TTL)
    p.execute()


def run(a):
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": "bench-baseline",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    md = c.list_topics(timeout=10)
    parts = [TopicPartition(t, p, OFFSET_BEGINNING)
             for t in TOPICS if t in md.topics for p in md.topics[t].partitions]
    c.assign(parts)
    r = redis.Redis.from_url(a.redis)
    users, dirty = {}, set()
    left, msgs, recs = len(parts), 0, 0
    t0 = time.monotonic()
    while left:
        batch = c.consume(num_messages=a.batch, timeout=1.0)
        for m in batch:
            e = m.error()
            if e:
                if e.code() == KafkaError._PARTITION_EOF:
                    left -= 1
                    continue
                sys.exit("bench_baseline: %s" % e)
            msgs += 1
            try:
                rs = parse(m.topic(), m.value())
            except (ValueError, KeyError, TypeError, StopIteration):
                continue
            for rec in rs:
                uid = rec["user_id"]
                u = users.get(uid)
                if u is None:
                    u = users[uid] = User()
                apply(u, rec)
                dirty.add(uid)
                recs += 1
        if dirty:
            write(r, users, dirty)
            dirty.clear()
    dt = time.monotonic() - t0
    c.close()
    print("%d %d %.3f" % (msgs, recs, dt))

# ---- comparing two stores ----------------------------------------------------------


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def same(a, b):
    if a == b:
        return True
    if a is None or b is None:
        return False
    x, y = num(a), num(b)
    if x is not None and y is not None:
        return abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1)
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def compare(a):
    ra, rb = redis.Redis.from_url(a.url_a), redis.Redis.from_url(a.url_b)
    ka = sorted(k.decode() for k in ra.scan_iter(PREFIX + "*", count=1000))
    kb = set(k.decode() for k in rb.scan_iter(PREFIX + "*", count=1000))
    diffs = 0
    missing = [k for k in ka if k not in kb] + sorted(kb - set(ka))
    for k in missing[:10]:
        print("key %s is in only one store" % k)
    diffs += len(missing)
    fields_diff = {}
    for k in ka:
        if k not in kb:
            continue
        ha, hb = ra.hgetall(k), rb.hgetall(k)
        for f in FEATURES:
            va, vb = ha.get(f.encode()), hb.get(f.encode())
            va = va.decode() if va is not None else None
            vb = vb.decode() if vb is not None else None
            if not same(va, vb):
                fields_diff[f] = fields_diff.get(f, 0) + 1
                if diffs < 20:
                    print("%s %s: %s != %s" % (k, f, va, vb))
                diffs += 1
    print("compared %d keys x %d features: %d differences%s" % (
        len(ka), len(FEATURES), diffs,
        "" if not fields_diff else " (" + ", ".join("%s %d" % x for x in sorted(fields_diff.items())) + ")"))
    return 1 if diffs else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("-b", "--brokers", required=True)
    p.add_argument("-r", "--redis", required=True)
    p.add_argument("--batch", type=int, default=1000)
    p = sub.add_parser("compare")
    p.add_argument("url_a")
    p.add_argument("url_b")
    a = ap.parse_args()
    if a.cmd == "run":
        run(a)
        return 0
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
