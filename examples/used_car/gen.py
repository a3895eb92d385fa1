#!/usr/bin/env python3
"""Generate a used-car marketplace event stream for featpipe's demo and benchmarks.

Four topics, each in the format such a source usually has:
  views       JSON    {"event":"view","user":{"id":..},"car":{"id":..,"brand":..,"price":..},"city":..,"ts":ms}
  favourites  CSV     user_id,car_id,brand,price,ts_seconds
  calls       logfmt  user=.. car=.. brand=.. city=.. dur=.. at=ISO-8601
  orders      JSON    {"type":"order","uid":..,"items":[{"car":..,"brand":..,"price":..}],"ts":ms}

Output: one line per event, "TOPIC<TAB>MESSAGE", in event-time order, or with
--split DIR one file per topic (DIR/TOPIC.txt).  Deterministic for a --seed.
"""
import argparse
import datetime
import json
import os
import random
import sys
import time

BRANDS = ["audi", "bmw", "citroen", "dacia", "fiat", "ford", "honda", "hyundai", "kia",
          "mazda", "mercedes", "nissan", "opel", "peugeot", "renault", "seat", "skoda",
          "tesla", "toyota", "volkswagen", "volvo"]
CITIES = ["berlin", "hamburg", "munich", "cologne", "frankfurt", "stuttgart", "leipzig",
          "dresden", "hanover", "nuremberg", "bremen", "essen"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--cars", type=int, default=800)
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--start-ms", type=int, default=None,
                    help="first event time (default: now minus --span-ms)")
    ap.add_argument("--span-ms", type=int, default=6 * 3600 * 1000,
                    help="event times spread over this long")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--split", metavar="DIR")
    a = ap.parse_args()

    if a.start_ms is None:
        a.start_ms = int(time.time() * 1000) - a.span_ms
    rnd = random.Random(a.seed)
    cars = []
    for c in range(a.cars):
        brand = rnd.choice(BRANDS)
        cars.append(("c%05d" % c, brand, rnd.randrange(1500, 90000, 50)))
    # a few popular cars get most of the attention (Zipf-like)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(a.cars)]
    home = {u: rnd.choice(CITIES) for u in range(1, a.users + 1)}

    outs = {}
    if a.split:
        os.makedirs(a.split, exist_ok=True)
        for t in ("views", "favourites", "calls", "orders"):
            outs[t] = open(os.path.join(a.split, t + ".txt"), "w")

    def emit(topic, line):
        if a.split:
            outs[topic].write(line + "\n")
        else:
            sys.stdout.write(topic + "\t" + line + "\n")

    step = a.span_ms / max(a.events, 1)
    for i in range(a.events):
        ts = a.start_ms + int(i * step) + rnd.randrange(0, max(int(step), 1))
        user = rnd.randint(1, a.users)
        car, brand, price = rnd.choices(cars, weights)[0]
        city = home[user] if rnd.random() < 0.9 else rnd.choice(CITIES)
        r = rnd.random()
        if r < 0.80:
            emit("views", json.dumps({"event": "view", "user": {"id": user},
                                      "car": {"id": car, "brand": brand, "price": price},
                                      "city": city, "ts": ts}, separators=(",", ":")))
        elif r < 0.92:
            emit("favourites", "%d,%s,%s,%d,%d" % (user, car, brand, price, ts // 1000))
        elif r < 0.98:
            at = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc)
            emit("calls", "user=%d car=%s brand=%s city=%s dur=%d at=%s" % (
                user, car, brand, city, rnd.randint(5, 900),
                at.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ts % 1000)))
        else:
            items = [{"car": car, "brand": brand, "price": price}]
            if rnd.random() < 0.1:
                c2, b2, p2 = rnd.choice(cars)
                items.append({"car": c2, "brand": b2, "price": p2})
            emit("orders", json.dumps({"type": "order", "uid": user, "items": items,
                                       "ts": ts}, separators=(",", ":")))
    for f in outs.values():
        f.close()


if __name__ == "__main__":
    main()
