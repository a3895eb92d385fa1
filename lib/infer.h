/* infer.h - propose a data dictionary entry (fp-dictionary(5)) from sample
 * messages, for a person to review and edit. */
#ifndef FP_INFER_H
#define FP_INFER_H

#include <stddef.h>

#include "buf.h"

/* Read samples s[0..n): JSON objects one per line, or CSV/TSV whose first
 * line is a header, or key=value lines; append a `source name` entry as
 * dictionary text to out.  Fields get names (nested paths joined with '_'),
 * a type (int, float, bool, string, time for ISO-8601 strings and for
 * epoch numbers in fields named like times, any for arrays), `from` when the
 * name differs from the path, and `required` when every sample has them.
 * 0, or -1 with err ("line N: why"). */
int infer_dict(const char *name, const char *s, size_t n, fp_buf *out, char *err,
               size_t errlen);

#endif
