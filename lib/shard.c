/* shard.c - the key hash shared by fp-keyby and its readers; see shard.h. */
#include "shard.h"

#include <xxhash.h>

#include "mpraw.h"
#include "num.h"

int
shard_key_canon(const uint8_t *p, size_t n, char buf[SHARD_CANON_BUF],
                const uint8_t **canon, size_t *clen)
{
	const char *s;
	if (n == 0)
		return -1;
	if (mp_read_str(p, n, &s, clen) == 0) {
		*canon = (const uint8_t *)s;
		return 0;
	}
	if (mp_read_bin(p, n, canon, clen) == 0)
		return 0;
	int64_t i;
	uint64_t u;
	int neg = 0;
	if (mp_read_int(p, n, &i) == 0) {
		neg = i < 0;
		u = neg ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
	} else if (mp_read_uint(p, n, &u) < 0) {
		return -1;
	}
	*clen = fp_fmt_dec(buf, u, neg);
	*canon = (const uint8_t *)buf;
	return 0;
}

uint64_t
shard_hash(const void *canon, size_t clen)
{
	return XXH3_64bits(canon, clen);
}

int
shard_of_key(const uint8_t *p, size_t n, uint32_t nshards, uint32_t *shard)
{
	char buf[SHARD_CANON_BUF];
	const uint8_t *c;
	size_t cl;
	if (shard_key_canon(p, n, buf, &c, &cl) < 0)
		return -1;
	*shard = (uint32_t)(shard_hash(c, cl) % nshards);
	return 0;
}

const char *
shard_type_name(const uint8_t *p, size_t n)
{
	if (n == 0)
		return "nothing";
	uint8_t c = p[0];
	if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
		return "integer";
	if (c <= 0x8f || c == 0xde || c == 0xdf)
		return "map";
	if (c <= 0x9f || c == 0xdc || c == 0xdd)
		return "array";
	if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb))
		return "string";
	switch (c) {
	case 0xc0: return "nil";
	case 0xc2: case 0xc3: return "boolean";
	case 0xc4: case 0xc5: case 0xc6: return "binary";
	case 0xca: case 0xcb: return "float";
	default: return "ext";
	}
}
