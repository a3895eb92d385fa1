/* tap.h - the few lines of TAP every unit test prints: ok(cond, name) for
 * each check, then return tap_done() from main (plan at the end; non-zero
 * exit when a check failed). */
#ifndef FP_TAP_H
#define FP_TAP_H

#include <stdio.h>

static int tap_n, tap_failed;

static void
ok(int cond, const char *name)
{
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, name);
}

static int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
