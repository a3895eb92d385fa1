/* test_buf.c - the growable buffer: growth keeps the bytes; a large buffer
 * is one mapping asked for huge pages (fp_mem_huge), not split in parts
 * that realloc() would have to copy.  TAP. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/buf.h"
#include "tap.h"

#if !defined(__SANITIZE_ADDRESS__)
/* Transparent huge pages can be asked for: "[always]" or "[madvise]". */
static int
thp_available(void)
{
	char t[200] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f)
		return 0;
	if (!fgets(t, sizeof t, f))
		t[0] = 0;
	fclose(f);
	return strstr(t, "[always]") || strstr(t, "[madvise]");
}

/* The mapping of /proc/self/smaps holding address a: its bounds and whether
 * its VmFlags carry "hg" (MADV_HUGEPAGE).  0, or -1 when not found. */
static int
mapping_of(uintptr_t a, uintptr_t *lo, uintptr_t *hi, int *hg)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, found = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		char c;
		if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3) {
			in = a >= s && a < e;
			if (in) {
				*lo = s;
				*hi = e;
			}
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			*hg = strstr(line, " hg") != NULL;
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}
#endif

int
main(void)
{
	fp_buf b = FP_BUF_INIT;
	int same = 1;

	/* grow from nothing to 16 MiB a few bytes at a time: every byte kept */
	for (uint32_t i = 0; i < (16u << 20) / 4; i++)
		if (fp_buf_add(&b, &i, sizeof i) < 0) {
			same = 0;
			break;
		}
	for (uint32_t i = 0; same && i < b.len / 4; i++) {
		uint32_t v;
		memcpy(&v, b.p + 4 * (size_t)i, 4);
		same = v == i;
	}
	ok(same && b.len == 16u << 20 && b.cap >= b.len, "16 MiB added 4 bytes at a time come back as written");

#if defined(__SANITIZE_ADDRESS__)
	ok(1, "# SKIP AddressSanitizer has its own allocator");
	ok(1, "# SKIP AddressSanitizer has its own allocator");
#else
	uintptr_t lo = 0, hi = 0;
	int hg = 0;
	int found = mapping_of((uintptr_t)b.p, &lo, &hi, &hg) == 0;
	ok(found && lo <= (uintptr_t)b.p && hi >= (uintptr_t)b.p + b.cap,
	   "the large buffer is one mapping (realloc can grow it with mremap, without a copy)");
	if (thp_available())
		ok(found && hg, "the large buffer is marked for huge pages (VmFlags hg)");
	else
		ok(1, "# SKIP transparent huge pages are not available here");
#endif
	fp_buf_release(&b);
	ok(b.p == NULL && b.len == 0 && b.cap == 0, "release empties it");

	/* arrays grow by doubling and keep their elements */
	size_t cap = 0;
	uint64_t *v = fp_array_grow(NULL, &cap, sizeof *v, 4), *nv;
	int kept = v && cap == 4;
	for (uint64_t i = 0; kept && i < 4; i++)
		v[i] = i * 7;
	kept = kept && (nv = fp_array_grow(v, &cap, sizeof *v, 4)) && cap == 8;
	if (kept)
		v = nv;
	for (uint64_t i = 0; kept && i < 4; i++)
		kept = v[i] == i * 7;
	ok(kept, "an array grows from nothing to the first size, then doubles, keeping its elements");
	size_t big = SIZE_MAX / 8;
	ok(!fp_array_grow(v, &big, 16, 4) && big == SIZE_MAX / 8,
	   "a size that would overflow: NULL, the array and its size as they were");
	free(v);

	/* a small buffer is left alone: not worth a system call */
	fp_buf s = FP_BUF_INIT;
	ok(fp_buf_adds(&s, "abc") == 0 && s.len == 3 && !memcmp(s.p, "abc", 3), "a small buffer");
	fp_buf_release(&s);
	return tap_done();
}
