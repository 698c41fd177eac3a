/* HOM (Paillier, g = n+1) on ciphertexts inside MariaDB: the aggregate cryptdb_hom_sum and
 * the scalar cryptdb_hom_add.
 *
 * A ciphertext is the big-endian unsigned integer c in [1, n^2), written with the fixed width
 * of n^2's byte length; n2 is passed the same way (its first byte is non-zero). Enc(a)*Enc(b)
 * mod n^2 = Enc(a+b), so SUM is a product and an increment is one multiplication:
 *   SELECT cryptdb_hom_sum(c_add, <n2>) FROM t GROUP BY ...
 *   UPDATE t SET c_add = cryptdb_hom_add(c_add, <Enc(k)>, <n2>)
 * A malformed ciphertext (wrong width, zero, >= n^2) makes the result NULL rather than
 * skipping the row: a silently wrong sum would decrypt to a plausible number.
 */
#include <gmp.h>

#include "udf_common.h"

/* n up to 8192 bits; bounds the work and memory a single row can ask for. */
#define HOM_MAX_N2_BYTES 2048

typedef struct {
    mpz_t n2;
    udf_buf n2_bytes; /* the modulus as given, to spot a change with one memcmp */
    size_t n2_len;    /* 0: no modulus yet */
} hom_modulus;

/* A well-formed n^2: n is odd (a product of odd primes) and the real sizes are far above 2
 * bytes; the upper bound caps the work and memory one row can ask for. */
static bool hom_modulus_ok(const unsigned char *m, size_t len)
{
    return len >= 2 && len <= HOM_MAX_N2_BYTES && m[0] != 0 && (m[len - 1] & 1) != 0;
}

static bool hom_same_modulus(const hom_modulus *mod, const unsigned char *m, size_t len)
{
    return mod->n2_len == len && memcmp(mod->n2_bytes.data, m, len) == 0;
}

/* Makes the well-formed `m` the current modulus, importing it only when it changed (n2 is
 * normally a constant: imported once per statement). False when out of memory. */
static bool hom_load_modulus(hom_modulus *mod, const unsigned char *m, size_t len)
{
    if (hom_same_modulus(mod, m, len))
        return true;
    if (!udf_buf_reserve(&mod->n2_bytes, len))
        return false;
    memcpy(mod->n2_bytes.data, m, len);
    mpz_import(mod->n2, len, 1, 1, 1, 0, m);
    mod->n2_len = len;
    return true;
}

/* Reads a fixed-width ciphertext into `out`; false unless it is in [1, n^2). */
static bool hom_import_ct(mpz_t out, const hom_modulus *mod, const unsigned char *c, size_t len)
{
    if (len != mod->n2_len)
        return false;
    mpz_import(out, len, 1, 1, 1, 0, c);
    return mpz_sgn(out) > 0 && mpz_cmp(out, mod->n2) < 0;
}

/* Writes x (< n^2) zero-padded to n^2's width into `out`, which has n2_len bytes. */
static void hom_export(unsigned char *out, const mpz_t x, size_t n2_len)
{
    memset(out, 0, n2_len);
    if (mpz_sgn(x) == 0)
        return;
    size_t bytes = (mpz_sizeinbase(x, 2) + 7) / 8;
    size_t written = 0;
    mpz_export(out + (n2_len - bytes), &written, 1, 1, 1, 0, x);
}

static void hom_modulus_init(hom_modulus *mod)
{
    mpz_init(mod->n2);
    mod->n2_len = 0;
}

static void hom_modulus_clear(hom_modulus *mod)
{
    mpz_clear(mod->n2);
    udf_buf_free(&mod->n2_bytes);
}

static unsigned long hom_max_length(unsigned long n2_max)
{
    return n2_max < HOM_MAX_N2_BYTES ? n2_max : HOM_MAX_N2_BYTES;
}

/* ---- aggregate: cryptdb_hom_sum(ct, n2) ------------------------------------------------ */

typedef struct {
    hom_modulus mod; /* fixed while the group/frame holds a non-NULL row */
    mpz_t acc, tmp;  /* reused across rows: no allocation per row once they have grown */
    long long rows;  /* valid ciphertexts folded in (like SUM, none gives NULL) */
    long long bad;   /* malformed rows in the group/frame: any makes the result NULL */
    bool poisoned;   /* two moduli met, or a removal failed: NULL until the next clear */
    bool oom;
    udf_buf out;
} hom_sum_state;

UDF_EXPORT bool cryptdb_hom_sum_init(UDF_INIT *initid, UDF_ARGS *args, char *message)
{
    static const char *const names[] = {"ct", "n2"};
    if (udf_check_args(args, message, "cryptdb_hom_sum", names, 2))
        return 1;
    hom_sum_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return udf_fail(message, "cryptdb_hom_sum: out of memory");
    hom_modulus_init(&st->mod);
    mpz_init_set_ui(st->acc, 1);
    mpz_init(st->tmp);
    initid->ptr = (char *)st;
    initid->maybe_null = 1;
    initid->const_item = 0;
    initid->max_length = hom_max_length(args->lengths[1]);
    return 0;
}

UDF_EXPORT void cryptdb_hom_sum_deinit(UDF_INIT *initid)
{
    hom_sum_state *st = (hom_sum_state *)initid->ptr;
    if (st == NULL)
        return;
    hom_modulus_clear(&st->mod);
    mpz_clear(st->acc);
    mpz_clear(st->tmp);
    udf_buf_free(&st->out);
    free(st);
    initid->ptr = NULL;
}

static void hom_sum_empty(hom_sum_state *st)
{
    mpz_set_ui(st->acc, 1);
    st->rows = 0;
    st->bad = 0;
    st->mod.n2_len = 0; /* the next row names the modulus again (normally the same constant) */
}

UDF_EXPORT void cryptdb_hom_sum_clear(UDF_INIT *initid, char *is_null, char *error)
{
    (void)is_null;
    (void)error;
    hom_sum_state *st = (hom_sum_state *)initid->ptr;
    hom_sum_empty(st);
    st->poisoned = false;
    st->oom = false;
}

/* Folds one row in (remove = false) or out of a window frame (remove = true).
 * NULL ciphertexts are skipped, as SUM skips them. A malformed row (bad modulus, ciphertext
 * of the wrong width or out of range) is counted in `bad`: the result is NULL while it is in
 * the group or frame. The first well-formed modulus becomes the group's until the frame
 * empties; a second one, or a ciphertext that cannot be removed, poisons the state until
 * the next clear: the product of the other key's rows was never kept, so NULL is the only
 * honest answer. Results are thus exact or NULL, never a wrong ciphertext. */
static void hom_sum_step(hom_sum_state *st, UDF_ARGS *args, bool remove)
{
    const unsigned char *ct = (const unsigned char *)args->args[0];
    const unsigned char *n2 = (const unsigned char *)args->args[1];
    size_t n2_len = args->lengths[1];
    long long delta = remove ? -1 : 1;
    if (ct == NULL || st->poisoned || st->oom)
        return;
    if (n2 == NULL || !hom_modulus_ok(n2, n2_len)) {
        st->bad += delta;
    } else if (st->mod.n2_len != 0 && !hom_same_modulus(&st->mod, n2, n2_len)) {
        st->poisoned = true;
        return;
    } else if (!hom_load_modulus(&st->mod, n2, n2_len)) {
        st->oom = true;
        return;
    } else if (!hom_import_ct(st->tmp, &st->mod, ct, args->lengths[0])) {
        st->bad += delta;
    } else if (remove && mpz_invert(st->tmp, st->tmp, st->mod.n2) == 0) {
        /* Paillier ciphertexts are units mod n^2 (a non-unit would reveal a factor of n). */
        st->poisoned = true;
        return;
    } else {
        st->rows += delta;
        mpz_mul(st->acc, st->acc, st->tmp);
        mpz_tdiv_r(st->acc, st->acc, st->mod.n2);
    }
    if (st->rows == 0 && st->bad == 0)
        hom_sum_empty(st); /* an empty frame: the next row may name another modulus */
}

UDF_EXPORT void cryptdb_hom_sum_add(UDF_INIT *initid, UDF_ARGS *args, char *is_null,
                                    char *error)
{
    (void)is_null;
    (void)error;
    hom_sum_step((hom_sum_state *)initid->ptr, args, false);
}

/* Older servers call reset (= clear + add) instead of clear. */
UDF_EXPORT void cryptdb_hom_sum_reset(UDF_INIT *initid, UDF_ARGS *args, char *is_null,
                                      char *error)
{
    cryptdb_hom_sum_clear(initid, is_null, error);
    cryptdb_hom_sum_add(initid, args, is_null, error);
}

/* MariaDB 10.4+: lets the aggregate run as a window function over sliding frames. */
UDF_EXPORT void cryptdb_hom_sum_remove(UDF_INIT *initid, UDF_ARGS *args, char *is_null,
                                       char *error)
{
    (void)is_null;
    (void)error;
    hom_sum_step((hom_sum_state *)initid->ptr, args, true);
}

UDF_EXPORT char *cryptdb_hom_sum(UDF_INIT *initid, UDF_ARGS *args, char *result,
                                 unsigned long *length, char *is_null, char *error)
{
    (void)args;
    (void)result;
    hom_sum_state *st = (hom_sum_state *)initid->ptr;
    if (st->oom) {
        *error = 1;
        return NULL;
    }
    if (st->poisoned || st->bad != 0 || st->rows <= 0 || st->mod.n2_len == 0) {
        *is_null = 1;
        return NULL;
    }
    if (!udf_buf_reserve(&st->out, st->mod.n2_len)) {
        *error = 1;
        return NULL;
    }
    hom_export(st->out.data, st->acc, st->mod.n2_len);
    *length = st->mod.n2_len;
    return (char *)st->out.data;
}

/* ---- scalar: cryptdb_hom_add(a, b, n2) = a*b mod n^2 ----------------------------------- */

typedef struct {
    hom_modulus mod;
    mpz_t a, b;
    udf_buf out;
} hom_add_state;

UDF_EXPORT bool cryptdb_hom_add_init(UDF_INIT *initid, UDF_ARGS *args, char *message)
{
    static const char *const names[] = {"a", "b", "n2"};
    if (udf_check_args(args, message, "cryptdb_hom_add", names, 3))
        return 1;
    hom_add_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return udf_fail(message, "cryptdb_hom_add: out of memory");
    hom_modulus_init(&st->mod);
    mpz_init(st->a);
    mpz_init(st->b);
    initid->ptr = (char *)st;
    initid->maybe_null = 1;
    initid->const_item = 0;
    initid->max_length = hom_max_length(args->lengths[2]);
    return 0;
}

UDF_EXPORT void cryptdb_hom_add_deinit(UDF_INIT *initid)
{
    hom_add_state *st = (hom_add_state *)initid->ptr;
    if (st == NULL)
        return;
    hom_modulus_clear(&st->mod);
    mpz_clear(st->a);
    mpz_clear(st->b);
    udf_buf_free(&st->out);
    free(st);
    initid->ptr = NULL;
}

UDF_EXPORT char *cryptdb_hom_add(UDF_INIT *initid, UDF_ARGS *args, char *result,
                                 unsigned long *length, char *is_null, char *error)
{
    (void)result;
    hom_add_state *st = (hom_add_state *)initid->ptr;
    const unsigned char *a = (const unsigned char *)args->args[0];
    const unsigned char *b = (const unsigned char *)args->args[1];
    const unsigned char *n2 = (const unsigned char *)args->args[2];
    if (a == NULL || b == NULL || n2 == NULL || !hom_modulus_ok(n2, args->lengths[2])) {
        *is_null = 1;
        return NULL;
    }
    if (!hom_load_modulus(&st->mod, n2, args->lengths[2])) {
        *error = 1;
        return NULL;
    }
    if (!hom_import_ct(st->a, &st->mod, a, args->lengths[0]) ||
        !hom_import_ct(st->b, &st->mod, b, args->lengths[1])) {
        *is_null = 1;
        return NULL;
    }
    if (!udf_buf_reserve(&st->out, st->mod.n2_len)) {
        *error = 1;
        return NULL;
    }
    mpz_mul(st->a, st->a, st->b);
    mpz_tdiv_r(st->a, st->a, st->mod.n2);
    hom_export(st->out.data, st->a, st->mod.n2_len);
    *length = st->mod.n2_len;
    return (char *)st->out.data;
}
