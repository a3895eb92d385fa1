/* num.c - checked number parsing; see num.h. */
#include "num.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETERR(...) do { if (errstr) snprintf(errstr, errlen, __VA_ARGS__); } while (0)

int
fp_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out,
             char *errstr, size_t errlen)
{
	char *end;
	if (!s || !*s || *s == ' ' || *s == '\t') {
		SETERR("'%s' is not a number", s ? s : "");
		return -1;
	}
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end) {
		SETERR("'%s' is not a whole number", s);
		return -1;
	}
	if (errno == ERANGE || v < min || v > max) {
		SETERR("'%s' is out of range (%" PRId64 "..%" PRId64 ")", s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
fp_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out,
             char *errstr, size_t errlen)
{
	char *end;
	if (!s || !(*s >= '0' && *s <= '9')) {
		SETERR("'%s' is not a non-negative number", s ? s : "");
		return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end) {
		SETERR("'%s' is not a whole number", s);
		return -1;
	}
	if (errno == ERANGE || v < min || v > max) {
		SETERR("'%s' is out of range (%" PRIu64 "..%" PRIu64 ")", s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
fp_parse_double(const char *s, double *out, char *errstr, size_t errlen)
{
	char *end;
	if (!s || !*s || *s == ' ' || *s == '\t') {
		SETERR("'%s' is not a number", s ? s : "");
		return -1;
	}
	errno = 0;
	double v = strtod(s, &end);
	if (*end || errno == ERANGE || !isfinite(v)) {
		SETERR("'%s' is not a finite number", s);
		return -1;
	}
	*out = v;
	return 0;
}

int
fp_parse_duration_ms(const char *s, int64_t bare_unit_ms, int allow_zero,
                     int64_t *out, char *errstr, size_t errlen)
{
	char *end;
	if (!s || !(*s >= '0' && *s <= '9')) {
		SETERR("'%s' is not a duration (e.g. 500ms, 5s, 10m, 1h, 30d)", s ? s : "");
		return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	int64_t unit;
	if (!*end)
		unit = bare_unit_ms;
	else if (!strcmp(end, "ms"))
		unit = 1;
	else if (!strcmp(end, "s"))
		unit = 1000;
	else if (!strcmp(end, "m"))
		unit = 60000;
	else if (!strcmp(end, "h"))
		unit = 3600000;
	else if (!strcmp(end, "d"))
		unit = 86400000;
	else if (!strcmp(end, "w"))
		unit = 7 * 86400000LL;
	else {
		SETERR("'%s': unknown duration unit '%s' (use ms, s, m, h, d or w)", s, end);
		return -1;
	}
	if (errno == ERANGE || v > (unsigned long long)(INT64_MAX / unit)) {
		SETERR("'%s' is too long a duration", s);
		return -1;
	}
	if (v == 0 && !allow_zero) {
		SETERR("'%s': the duration must be greater than zero", s);
		return -1;
	}
	*out = (int64_t)v * unit;
	return 0;
}

int
fp_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out,
              char *errstr, size_t errlen)
{
	char *end;
	if (!s || !(*s >= '0' && *s <= '9')) {
		SETERR("'%s' is not a size", s ? s : "");
		return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mul;
	if (!*end)
		mul = 1;
	else if (!strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KiB"))
		mul = 1024;
	else if (!strcmp(end, "M") || !strcmp(end, "MiB"))
		mul = 1024 * 1024;
	else if (!strcmp(end, "G") || !strcmp(end, "GiB"))
		mul = 1024ULL * 1024 * 1024;
	else {
		SETERR("'%s': unknown size suffix '%s' (use K, M or G)", s, end);
		return -1;
	}
	if (errno == ERANGE || v > UINT64_MAX / mul || v * mul < min || v * mul > max) {
		SETERR("'%s' is out of range (%" PRIu64 "..%" PRIu64 " bytes)", s, min, max);
		return -1;
	}
	*out = v * mul;
	return 0;
}
