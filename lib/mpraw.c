/* mpraw.c - MessagePack checking and scanning on raw bytes; see mpraw.h. */
#include "mpraw.h"

#include <stdio.h>
#include <string.h>

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0. */
size_t
utf8_seq_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && p[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)
			return 0;
		if (c == 0xf4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

int
utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_seq_len(p + i, n - i);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

enum kind { K_SCALAR, K_MAP, K_ARRAY, K_INVALID };

/* Decode one header.  *hdr: header bytes; *payload: bytes after the header
 * belonging to this object (strings, bins, ext data, numbers); *count:
 * children for containers.  Returns K_INVALID when the type byte is 0xc1
 * or the header is truncated (*hdr then 0). */
static inline __attribute__((always_inline)) enum kind
header(const uint8_t *p, size_t n, size_t *hdr, uint64_t *payload, uint32_t *count)
{
	*payload = 0;
	*count = 0;
	if (n < 1)
		goto trunc;
	uint8_t c = p[0];
	*hdr = 1;
	if (c <= 0x7f || c >= 0xe0)
		return K_SCALAR;
	if (c <= 0x8f) { *count = c & 0x0f; return K_MAP; }
	if (c <= 0x9f) { *count = c & 0x0f; return K_ARRAY; }
	if (c <= 0xbf) { *payload = c & 0x1f; return K_SCALAR; }
	size_t need;
	switch (c) {
	case 0xc0: case 0xc2: case 0xc3:
		return K_SCALAR;
	case 0xc1:
		return K_INVALID;
	case 0xc4: case 0xd9: need = 2; break;
	case 0xc5: case 0xda: need = 3; break;
	case 0xc6: case 0xdb: need = 5; break;
	case 0xc7: need = 3; break;
	case 0xc8: need = 4; break;
	case 0xc9: need = 6; break;
	case 0xca: *payload = 4; return K_SCALAR;
	case 0xcb: *payload = 8; return K_SCALAR;
	case 0xcc: case 0xd0: *payload = 1; return K_SCALAR;
	case 0xcd: case 0xd1: *payload = 2; return K_SCALAR;
	case 0xce: case 0xd2: *payload = 4; return K_SCALAR;
	case 0xcf: case 0xd3: *payload = 8; return K_SCALAR;
	case 0xd4: *payload = 2; return K_SCALAR;
	case 0xd5: *payload = 3; return K_SCALAR;
	case 0xd6: *payload = 5; return K_SCALAR;
	case 0xd7: *payload = 9; return K_SCALAR;
	case 0xd8: *payload = 17; return K_SCALAR;
	case 0xdc: case 0xde: need = 3; break;
	case 0xdd: case 0xdf: need = 5; break;
	default: return K_INVALID;
	}
	if (n < need)
		goto trunc;
	*hdr = need;
	switch (c) {
	case 0xc4: case 0xd9: *payload = p[1]; return K_SCALAR;
	case 0xc5: case 0xda: *payload = be16(p + 1); return K_SCALAR;
	case 0xc6: case 0xdb: *payload = be32(p + 1); return K_SCALAR;
	case 0xc7: *payload = (uint64_t)p[1] + 1; *hdr = 2; return K_SCALAR;
	case 0xc8: *payload = (uint64_t)be16(p + 1) + 1; *hdr = 3; return K_SCALAR;
	case 0xc9: *payload = (uint64_t)be32(p + 1) + 1; *hdr = 5; return K_SCALAR;
	case 0xdc: *count = be16(p + 1); return K_ARRAY;
	case 0xde: *count = be16(p + 1); return K_MAP;
	case 0xdd: *count = be32(p + 1); return K_ARRAY;
	default: *count = be32(p + 1); return K_MAP;
	}
trunc:
	*hdr = 0;
	return K_INVALID;
}

static int
is_str(uint8_t c)
{
	return (c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb;
}

/* The size of the numbers 0xca (float32) to 0xd3 (int64), header included. */
static const uint8_t fixed_size[10] = {5, 9, 2, 3, 5, 9, 2, 3, 5, 9};

/* 1 when the n bytes at s are all ASCII: the usual map key, checked
 * without utf8_seq_len(). */
static inline int
ascii(const uint8_t *s, size_t n)
{
	uint8_t o = 0;
	for (size_t i = 0; i < n; i++)
		o |= s[i];
	return o < 0x80;
}

int
mp_check_frame(const uint8_t *p, size_t n, const mp_limits *lim,
               char *errstr, size_t errlen)
{
	return mp_check_frame_top(p, n, lim, errstr, errlen, NULL, 0, NULL);
}

int
mp_check_frame_top(const uint8_t *p, size_t n, const mp_limits *lim,
                   char *errstr, size_t errlen, uint32_t *top, uint32_t maxtop,
                   uint32_t *ntop)
{
	uint32_t nt = 0;
	struct { uint64_t left; int map; } st[MP_MAX_DEPTH + 1];
	unsigned maxd = lim && lim->max_depth ? lim->max_depth : MP_DEFAULT_DEPTH;
	uint32_t maxe = lim && lim->max_elements ? lim->max_elements : MP_DEFAULT_ELEMENTS;
	if (maxd > MP_MAX_DEPTH)
		maxd = MP_MAX_DEPTH;
	size_t off = 0;
	int depth = 0;
	/* the container being read (depth > 0): entries left, a map; the
	 * ones around it are in st[1..depth-1] */
	uint64_t left = 0;
	int map = 0;
	const char *why = NULL;

	if (n == 0) {
		snprintf(errstr, errlen, "empty frame body");
		return -1;
	}
	if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf)) {
		snprintf(errstr, errlen, "the frame's root is not a map (type byte 0x%02x)", p[0]);
		return -1;
	}
	do {
		if (off >= n) {
			why = "truncated";
			break;
		}
		uint8_t c = p[off];
		/* The common objects first, sized here: fixstr keys of ASCII
		 * (UTF-8 checked only when a byte is not), fixints, nil,
		 * booleans, fixstr values and numbers.  The rest, and whatever is
		 * truncated, go through header(). */
		if (map && (left % 2) == 0) {
			/* inside a map, even positions are keys */
			if (!is_str(c)) {
				snprintf(errstr, errlen, "map key at byte %zu is not a string (type byte 0x%02x)",
				         off, c);
				return -1;
			}
			const char *ks;
			size_t kl;
			if (depth == 1) {
				if (nt < maxtop)
					top[nt] = (uint32_t)off;
				nt++;
			}
			if (c <= 0xbf && (size_t)(c & 0x1f) < n - off) {
				kl = c & 0x1f;
				ks = (const char *)p + off + 1;
				if (!ascii((const uint8_t *)ks, kl) && !utf8_valid((const uint8_t *)ks, kl))
					goto bad_key;
				off += 1 + kl;
				goto scalar;
			}
			if (mp_read_str(p + off, n - off, &ks, &kl) == 0 &&
			    !utf8_valid((const uint8_t *)ks, kl))
				goto bad_key;
		} else if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
			off++;
			goto scalar;
		} else if (c >= 0xa0 && c <= 0xbf && (size_t)(c & 0x1f) < n - off) {
			off += 1 + (size_t)(c & 0x1f);
			goto scalar;
		} else if (c >= 0xca && c <= 0xd3 && fixed_size[c - 0xca] <= n - off) {
			off += fixed_size[c - 0xca];
			goto scalar;
		}
		size_t hdr;
		uint64_t payload;
		uint32_t count;
		enum kind k = header(p + off, n - off, &hdr, &payload, &count);
		if (k == K_INVALID) {
			why = hdr == 0 ? "truncated" : "invalid type byte";
			break;
		}
		size_t start = off;
		off += hdr;
		if (payload > n - off) {
			why = "truncated";
			off = start;
			break;
		}
		off += payload;
		if (k != K_SCALAR) {
			if (depth > 0)
				left--;
			uint64_t items = k == K_MAP ? 2ULL * count : count;
			if (count > maxe) {
				snprintf(errstr, errlen, "container at byte %zu holds %u entries, more than the limit of %u",
				         start, count, maxe);
				return -1;
			}
			if (items > n - off) {
				snprintf(errstr, errlen, "container at byte %zu claims %u entries but only %zu bytes are left",
				         start, count, n - off);
				return -1;
			}
			if ((unsigned)depth + 1 > maxd) {
				snprintf(errstr, errlen, "nesting deeper than %u at byte %zu", maxd, start);
				return -1;
			}
			st[depth].left = left;
			st[depth].map = map;
			depth++;
			left = items;
			map = k == K_MAP;
			goto pop;
		}
	scalar:
		if (depth > 0)
			left--;
	pop:
		while (depth > 0 && left == 0) {
			depth--;
			left = st[depth].left;
			map = depth > 0 && st[depth].map;
		}
	} while (depth > 0);

	if (why) {
		snprintf(errstr, errlen, "invalid msgpack at byte %zu of %zu: %s", off, n, why);
		return -1;
	}
	if (off != n) {
		snprintf(errstr, errlen, "%zu trailing bytes after the map (it ends at byte %zu of %zu)",
		         n - off, off, n);
		return -1;
	}
	if (ntop)
		*ntop = nt;
	return 0;

bad_key:
	snprintf(errstr, errlen, "map key at byte %zu is not valid UTF-8", off);
	return -1;
}

size_t
mp_skip_any(const uint8_t *p, size_t n)
{
	size_t off = 0;
	uint64_t pending = 1;
	while (pending) {
		size_t hdr;
		uint64_t payload;
		uint32_t count;
		enum kind k = header(p + off, n - off, &hdr, &payload, &count);
		if (k == K_INVALID)
			return 0;
		off += hdr;
		if (payload > n - off)
			return 0;
		off += payload;
		pending--;
		if (k == K_MAP)
			pending += 2ULL * count;
		else if (k == K_ARRAY)
			pending += count;
		if (pending > n - off) /* each pending object needs a byte */
			return 0;
	}
	return off;
}

int
mp_read_str(const uint8_t *p, size_t n, const char **s, size_t *slen)
{
	size_t hdr;
	uint64_t payload;
	uint32_t count;
	if (n < 1 || !is_str(p[0]) || header(p, n, &hdr, &payload, &count) != K_SCALAR ||
	    payload > n - hdr)
		return -1;
	*s = (const char *)p + hdr;
	*slen = payload;
	return 0;
}

int
mp_read_bin(const uint8_t *p, size_t n, const uint8_t **b, size_t *blen)
{
	size_t hdr;
	uint64_t payload;
	uint32_t count;
	if (n < 1 || p[0] < 0xc4 || p[0] > 0xc6 ||
	    header(p, n, &hdr, &payload, &count) != K_SCALAR || payload > n - hdr)
		return -1;
	*b = p + hdr;
	*blen = payload;
	return 0;
}

int
mp_map_find(const uint8_t *p, size_t n, const char *key, size_t klen,
            const uint8_t **val, size_t *vlen)
{
	uint32_t count;
	size_t off;
	if (mp_read_map(p, n, &count, &off) < 0)
		return 0;
	for (uint32_t i = 0; i < count; i++) {
		if (off >= n)
			return 0;
		const uint8_t *k = p + off;
		const char *ks;
		size_t kl, ksize;
		if (k[0] >= 0xa0 && k[0] <= 0xbf) { /* fixstr: the usual key */
			kl = k[0] & 0x1f;
			ksize = 1 + kl;
			ks = (const char *)k + 1;
			if (ksize > n - off)
				return 0;
		} else {
			if (!(ksize = mp_skip(k, n - off)))
				return 0;
			if (mp_read_str(k, n - off, &ks, &kl) < 0)
				kl = SIZE_MAX; /* not a string: never matches */
		}
		int match = kl == klen && memcmp(ks, key, klen) == 0;
		off += ksize;
		size_t vs = mp_skip(p + off, n - off);
		if (!vs)
			return 0;
		if (match) {
			*val = p + off;
			*vlen = vs;
			return 1;
		}
		off += vs;
	}
	return 0;
}

int
mp_is_control(const uint8_t *p, size_t n)
{
	const uint8_t *v;
	size_t vl;
	return mp_map_find(p, n, "@ctl", 4, &v, &vl);
}

int
mp_read_int(const uint8_t *p, size_t n, int64_t *v)
{
	if (n < 1)
		return -1;
	uint8_t c = p[0];
	if (c <= 0x7f) { *v = c; return 0; }
	if (c >= 0xe0) { *v = (int8_t)c; return 0; }
	switch (c) {
	case 0xcc: if (n < 2) return -1; *v = p[1]; return 0;
	case 0xcd: if (n < 3) return -1; *v = be16(p + 1); return 0;
	case 0xce: if (n < 5) return -1; *v = be32(p + 1); return 0;
	case 0xcf: {
		if (n < 9) return -1;
		uint64_t u = be64(p + 1);
		if (u > INT64_MAX) return -1;
		*v = (int64_t)u;
		return 0;
	}
	case 0xd0: if (n < 2) return -1; *v = (int8_t)p[1]; return 0;
	case 0xd1: if (n < 3) return -1; *v = (int16_t)be16(p + 1); return 0;
	case 0xd2: if (n < 5) return -1; *v = (int32_t)be32(p + 1); return 0;
	case 0xd3: if (n < 9) return -1; *v = (int64_t)be64(p + 1); return 0;
	default: return -1;
	}
}

int
mp_read_uint(const uint8_t *p, size_t n, uint64_t *v)
{
	if (n >= 9 && p[0] == 0xcf) {
		*v = be64(p + 1);
		return 0;
	}
	int64_t i;
	if (mp_read_int(p, n, &i) < 0 || i < 0)
		return -1;
	*v = (uint64_t)i;
	return 0;
}

int
mp_read_number(const uint8_t *p, size_t n, double *v)
{
	if (n >= 5 && p[0] == 0xca) {
		uint32_t u = be32(p + 1);
		float f;
		memcpy(&f, &u, 4);
		*v = f;
		return 0;
	}
	if (n >= 9 && p[0] == 0xcb) {
		uint64_t u = be64(p + 1);
		memcpy(v, &u, 8);
		return 0;
	}
	uint64_t u;
	if (n >= 9 && p[0] == 0xcf && mp_read_uint(p, n, &u) == 0) {
		*v = (double)u;
		return 0;
	}
	int64_t i;
	if (mp_read_int(p, n, &i) < 0)
		return -1;
	*v = (double)i;
	return 0;
}

int
mp_read_map(const uint8_t *p, size_t n, uint32_t *count, size_t *hdrlen)
{
	uint64_t payload;
	if (n < 1 || header(p, n, hdrlen, &payload, count) != K_MAP)
		return -1;
	return 0;
}

int
mp_read_array(const uint8_t *p, size_t n, uint32_t *count, size_t *hdrlen)
{
	uint64_t payload;
	if (n < 1 || header(p, n, hdrlen, &payload, count) != K_ARRAY)
		return -1;
	return 0;
}
