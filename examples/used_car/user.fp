# Per-user features of a used-car marketplace (fp-features(5)).
# Input: the behaviour records dictionary.fpd produces from the four topics.
key     user_id
prefix  "u:"
time    ts
ttl     30d

views_1h      = count()            where action == "view"       over 1h  by 1m
views_24h     = count()            where action == "view"       over 24h by 1h
favs_7d       = count()            where action == "favourite"  over 7d  by 1h
calls_7d      = count()            where action == "call"       over 7d  by 1h
spend         = sum(price)         where action == "order"
price_avg_7d  = avg(price)         where action == "view"       over 7d  by 1h
price_max     = max(price)         where action == "view"
recent_cars   = last(car_id, 20)   where action == "view"
top_brands    = topk(brand, 5)                                  over 7d  by 1h
uniq_cars_1d  = distinct(car_id)                                over 1d  by 1h
last_city     = latest(city)
first_seen    = first(ts)
