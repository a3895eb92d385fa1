# A global "hot items in the last 10 minutes" ranking (fp-features(5)).
# One key for everything; fp-kvwrite --zset hot_cars_10m also writes the
# ranking as the sorted set hot:all:hot_cars_10m for ZREVRANGE readers.
key     scope
prefix  "hot:"
time    ts

hot_cars_10m   = topk(car_id, 20)   over 10m by 1m
hot_brands_10m = topk(brand, 5)     over 10m by 1m
views_10m      = count()            over 10m by 1m
