/* Shared helpers for the cryptdb UDFs: symbol export, argument checks, growable buffers.
 *
 * Rules every UDF follows (a UDF runs inside mariadbd; a crash takes the server down):
 *   - _init checks the argument count and types and fails with a message naming the function;
 *   - every length is checked again at call time (NULL rows, per-row lengths);
 *   - bad input gives a NULL result, allocation failure sets *error; nothing aborts.
 */
#ifndef CRYPTDB_UDF_COMMON_H
#define CRYPTDB_UDF_COMMON_H

#include <stdbool.h> /* mysql.h uses bool without including it */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

/* The Makefile builds with -fvisibility=hidden: only the UDF entry points are exported. */
#define UDF_EXPORT __attribute__((visibility("default")))

/* Fails _init with a message. MariaDB prints only the first 80 characters ("%-.80s"). */
static inline bool udf_fail(char *message, const char *text)
{
    snprintf(message, MYSQL_ERRMSG_SIZE, "%s", text);
    return 1;
}

/* Checks the argument count and that every argument is a (binary) string: `names` holds one
 * name per expected argument. String expressions (columns, _binary'..', X'..', 0x..) pass
 * unchanged; numbers and decimals are refused rather than coerced, because their decimal
 * text is never a valid ciphertext or key and a wrong column in a rewritten query should
 * fail loudly at init instead of yielding NULLs. */
static inline bool udf_check_args(UDF_ARGS *args, char *message, const char *fn,
                                  const char *const *names, unsigned count)
{
    if (args->arg_count != count) {
        char list[64] = "";
        for (unsigned i = 0; i < count; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, names[i], sizeof list - strlen(list) - 1);
        }
        snprintf(message, MYSQL_ERRMSG_SIZE, "%s takes %u arguments: %s", fn, count, list);
        return 1;
    }
    for (unsigned i = 0; i < count; i++) {
        if (args->arg_type[i] != STRING_RESULT) {
            snprintf(message, MYSQL_ERRMSG_SIZE, "%s: argument %u (%s) must be a binary string",
                     fn, i + 1, names[i]);
            return 1;
        }
    }
    return 0;
}

/* A buffer kept across rows of one statement and freed in _deinit. */
typedef struct {
    unsigned char *data;
    size_t cap;
} udf_buf;

/* Ensures room for `need` bytes; false when memory is exhausted (old contents are kept). */
static inline bool udf_buf_reserve(udf_buf *b, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

static inline void udf_buf_free(udf_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

#endif
