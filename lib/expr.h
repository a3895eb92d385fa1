/* expr.h - field paths and `where` conditions evaluated on raw msgpack.
 *
 * Field paths: name(.name|[index])*.  A name is bare, [A-Za-z_@][A-Za-z0-9_@-]*,
 * or "quoted" with JSON escapes ("user name", "a.b"); an index is a decimal
 * non-negative integer (ids[0]).  No white space inside a path.
 *
 * Conditions (lowest precedence first):
 *   expr  := and ("or" and)*
 *   and   := not ("and" not)*
 *   not   := "not" not | prim
 *   prim  := "(" expr ")" | "exists" "(" PATH ")"
 *          | OPERAND op OPERAND            op: == != < <= > >=
 *          | PATH "in" "[" lit ("," lit)* "]" | PATH "not" "in" "[" ... "]"
 *          | PATH                          (true when the field is boolean true)
 *   lit   := number | "string" | true | false | null
 * An OPERAND is a path or a literal; one side of a comparison must be a path.
 * Numbers without '.' or exponent are integers (int64, or uint64 above it),
 * others float64.  Keywords (and or not in true false null) are lower case;
 * `exists` is the function only when followed by "(".
 *
 * A double-quoted operand followed by '.' or '[' starts a path.  Otherwise it
 * is a string literal when the other side of its comparison is a path
 * (action == "view", "view" == action) and a field name in every other place
 * ("user name" == "bob", "user name" in [...], a bare "flag", exists("x y")).
 *
 * Semantics (SQL three-valued logic): a comparison whose field is missing, or
 * whose two sides have different types, is UNKNOWN.  Numbers compare exactly
 * across int/uint/float (1 == 1.0; NaN is unknown); str and bin compare
 * bytewise as byte strings; booleans and null support == and != only
 * (ordering them is unknown).  One exception to "different types": `== null`
 * and `!= null` are defined for any present value (true/false), so
 * `x != null` means "present and not nil".  Arrays and maps compare unknown.
 * `x in [a, b]` is `x == a or x == b`; `not in` is its negation.  `not
 * unknown` is unknown, `unknown and false` is false, `unknown or true` is
 * true.  A bare path is true/false for a boolean, unknown otherwise (or when
 * missing).  exists(PATH) is true when the path leads to a value (even nil),
 * false otherwise, never unknown.  The final unknown does not match.
 */
#ifndef FP_EXPR_H
#define FP_EXPR_H

#include <stddef.h>
#include <stdint.h>

typedef struct expr_error {
	size_t column;  /* 1-based byte column in src (n + 1: at the end) */
	char msg[160];
} expr_error;

typedef struct expr expr;       /* opaque, immutable after parse */
typedef struct fp_path fp_path; /* opaque, immutable after parse */

/* Parse the longest valid condition at the start of src[0..n) (leading white
 * space allowed).  *consumed (if not NULL) = bytes up to the end of its last
 * token; trailing text ("over 1h", "where") is left to the caller.  Returns
 * a new expr owned by the caller (expr_free), or NULL with *err set (bad
 * syntax, or out of memory). */
expr *expr_parse(const char *src, size_t n, size_t *consumed, expr_error *err);
void expr_free(expr *e);

/* Evaluate on a checked msgpack map (a frame body): 1 when the condition is
 * true; 0 when false or unknown.  No allocation; thread-safe on one expr. */
int expr_match(const expr *e, const uint8_t *rec, size_t len);

/* Parse a field path at the start of src[0..n) (no leading white space).
 * *consumed (if not NULL) = bytes used.  Returns a new path (fp_path_free),
 * or NULL with *err set. */
fp_path *fp_path_parse(const char *src, size_t n, size_t *consumed, expr_error *err);
void fp_path_free(fp_path *p);
/* The path as written, NUL-terminated; valid while p lives. */
const char *fp_path_text(const fp_path *p);
/* Find the value at path p in the msgpack map rec[0..len) (checked): 1 and
 * the raw bytes of the value in *val, *vlen (pointing into rec); 0 when the
 * path leads nowhere (a missing name, an index past the end, or a step into
 * something that is not a map/array). */
int fp_path_get(const fp_path *p, const uint8_t *rec, size_t len,
                const uint8_t **val, size_t *vlen);

#endif
