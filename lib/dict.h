/* dict.h - the data dictionary (fp-dictionary(5)): which sources exist, how
 * their messages are written, and which typed fields a behaviour record gets.
 *
 * A dictionary is parsed once (dict_load / dict_parse) into an immutable
 * tree of sources -> shapes -> fields; fp-import's engine (imp.h) reads it.
 * Errors name file:line:column and what was expected.
 */
#ifndef FP_DICT_H
#define FP_DICT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct expr;

enum dict_format { DICT_JSON, DICT_CSV, DICT_TSV, DICT_KV };
enum dict_type { DT_STRING, DT_INT, DT_FLOAT, DT_BOOL, DT_TIME, DT_ANY };

/* One step of a field path: a map key, or an array index (name NULL). */
typedef struct dict_step {
	char *name;      /* owned; NULL for an index */
	size_t len;
	uint32_t index;
} dict_step;

/* Where a value comes from.  JSON: a path name(.name|[i])*; CSV/TSV: a
 * column name or 1-based column number; key=value: a key.  A path whose
 * first step is the explode alias starts at the array element. */
typedef struct dict_path {
	char *text;          /* as written; owned */
	dict_step *steps;    /* owned */
	size_t nsteps;
	int elem;            /* 1: starts at the exploded element (step 0 is the alias) */
	int column;          /* CSV/TSV: 0-based column from a number or the column list; -1 */
	unsigned root;       /* JSON, !elem: index into the source's root names */
} dict_path;

typedef struct dict_field {
	char *name;          /* output name; owned */
	size_t nlen;
	fp_buf key;          /* the name as a msgpack str */
	enum dict_type type;
	int64_t unit;        /* DT_TIME: ms per number unit (1 or 1000) */
	dict_path from;      /* unused when is_const */
	int required;
	int has_default, is_const;
	fp_buf value;        /* msgpack of the default or constant (already typed) */
	unsigned line;
} dict_field;

typedef struct dict_shape {
	char **values;       /* discriminator values as text; owned */
	size_t nvalues;
	int otherwise;       /* `when *` */
	int drop;            /* messages of this shape are skipped (counted) */
	dict_field *fields;
	size_t nfields;
	struct expr *where;  /* NULL for none */
	char *where_text;
	int has_explode;
	dict_path explode;
	char *alias;         /* the element's name in field paths */
	unsigned line;
} dict_shape;

typedef struct dict_source {
	char *name;
	char **topics;       /* names or fnmatch(3) patterns */
	size_t ntopics;
	enum dict_format format;
	char **columns;      /* CSV/TSV column names */
	size_t ncolumns;
	int header;          /* columns come from the first line (--lines) */
	char *time_field;    /* output field giving @ts in --lines mode, or NULL */
	int has_shape_by;
	dict_path shape_by;
	dict_shape common;   /* fields, where, explode before the first `when` */
	dict_shape *shapes;
	size_t nshapes;
	char **roots;        /* JSON: distinct first path steps (top-level keys) */
	size_t *rootlen;
	size_t nroots;
	unsigned line;
} dict_source;

typedef struct dict {
	dict_source *sources;
	size_t nsources;
} dict;

/* Parse dictionary text s[0..n); fname names it in errors.  Returns a dict
 * owned by the caller (dict_free), or NULL with err = "fname:line:col: why". */
dict *dict_parse(const char *s, size_t n, const char *fname, char *err, size_t errlen);
/* Read and parse the file at path (NULL on a read error too, with err). */
dict *dict_load(const char *path, char *err, size_t errlen);
void dict_free(dict *d);

/* The first source whose topic list matches topic (fnmatch), or NULL. */
const dict_source *dict_find_topic(const dict *d, const char *topic, size_t len);
/* The source called name, or NULL. */
const dict_source *dict_find_source(const dict *d, const char *name);

const char *dict_type_name(enum dict_type t, int64_t unit);
const char *dict_format_name(enum dict_format f);

/* Coerce a value to type t (unit for DT_TIME) and append its msgpack to out.
 * From msgpack bytes v[0..vlen) (a JSON value; nil is handled by the caller)
 * or from text s[0..n) (CSV, key=value, literals).  0, or -1 with why set
 * (out unchanged). */
int dict_coerce_mp(enum dict_type t, int64_t unit, const uint8_t *v, size_t vlen,
                   fp_buf *out, char *why, size_t whylen);
int dict_coerce_text(enum dict_type t, int64_t unit, const char *s, size_t n,
                     fp_buf *out, char *why, size_t whylen);

/* s[0..n) for a message: control and non-ASCII bytes as '?', cut with
 * "..." to fit cap (NUL-terminated). */
void dict_show(char *dst, size_t cap, const char *s, size_t n);

/* ISO-8601 date-time to ms since the epoch: YYYY-MM-DD, then optionally
 * [T or space]hh:mm[:ss[.fraction]] and Z or +hh[:mm]/-hh[:mm] (no zone:
 * UTC).  0, or -1 when s is not such a time. */
int dict_parse_iso8601(const char *s, size_t n, int64_t *ms);

#endif
