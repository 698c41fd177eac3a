/* Compiled core of the OPE in _ope_ref.py (read that first: this file is a transcription of
 * it for D <= 64 and R <= 128, and must give the same bytes). Where the reference would need
 * more than one coin word for a Pareto draw, or MPFR for an acceptance test the double
 * computation cannot settle, this code returns OPE_FALLBACK and the Python wrapper reruns
 * the value in the reference (about once in 10**5 values).
 *
 * Built with -ffp-contract=off: the double-precision tests must not change with FMA. Their
 * outcome is protected by a 2**-30 margin anyway, so libm's last-bit differences do not
 * change any ciphertext. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define OPE_OK 0
#define OPE_FALLBACK 1
#define OPE_INVALID 2
#define OPE_ERROR (-1)

#define SMALL_M 1024
#define TAIL_MIN 128
#define ETA 9.313225746154785e-10 /* 2**-30 */

#define EXPORT __attribute__((visibility("default")))

typedef unsigned __int128 u128;

typedef struct {
    EVP_CIPHER_CTX *e1, *e2;
    unsigned d, r;
    unsigned char root[16];
} ope_ctx;

typedef struct {
    const ope_ctx *ctx;
    unsigned char state[16];
    uint64_t j;
    uint64_t pending;
    int has_pending;
    int failed;
} coins;

static int aes(EVP_CIPHER_CTX *c, const unsigned char in[16], unsigned char out[16])
{
    int len = 0;
    return EVP_EncryptUpdate(c, out, &len, in, 16) == 1 && len == 16;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t word(coins *c)
{
    if (c->has_pending) {
        c->has_pending = 0;
        return c->pending;
    }
    unsigned char blk[16], mid[16], out[16];
    memcpy(blk, c->state, 16);
    blk[0] ^= 0x02;
    unsigned char jb[8];
    put_be64(jb, c->j++);
    for (int i = 0; i < 8; i++)
        blk[8 + i] ^= jb[i];
    if (!aes(c->ctx->e1, blk, mid) || !aes(c->ctx->e2, mid, out)) {
        c->failed = 1;
        return 0;
    }
    c->pending = be64(out + 8);
    c->has_pending = 1;
    return be64(out);
}

static int child(const ope_ctx *ctx, unsigned char state[16], unsigned depth, int bit)
{
    unsigned char blk[16], out[16];
    memcpy(blk, state, 16);
    blk[0] ^= 0x01;
    blk[1] ^= (unsigned char)bit;
    blk[2] ^= (unsigned char)(depth >> 8);
    blk[3] ^= (unsigned char)depth;
    if (!aes(ctx->e1, blk, out))
        return 0;
    memcpy(state, out, 16);
    return 1;
}

static uint64_t isqrt_u128(u128 m) /* m <= 2**64 */
{
    uint64_t r = (uint64_t)sqrtl((long double)m);
    while ((u128)r * r > m)
        r--;
    while ((u128)(r + 1) * (r + 1) <= m)
        r++;
    return r;
}

static double psi(double t)
{
    if (fabs(t) < 0.125) {
        double u = t * t, acc = 0.0;
        for (int j = 10; j >= 1; j--)
            acc = acc * u + 1.0 / (double)(j * (2 * j - 1));
        return acc * u;
    }
    return (1.0 + t) * log1p(t) + (1.0 - t) * log1p(-t);
}

static double stirlerr(double y)
{
    double y2 = y * y;
    return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - 1.0 / (1680 * y2)) / y2) / y2) / y;
}

/* Signed 128-bit to double the way Python's int/float division rounds it (exact for the
 * ranges used: |value| <= 2**65, rounded to nearest). */
static double i128_to_double(__int128 v)
{
    return (double)v;
}

static double log_r_double(u128 m, u128 m0, u128 x, __int128 k, uint64_t s)
{
    double mf = (double)m;
    double t = i128_to_double((__int128)(2 * x) - (__int128)m) / mf;
    double t0 = i128_to_double((__int128)(2 * m0) - (__int128)m) / mf;
    double a = 0.5 * mf * (psi(t) - psi(t0));
    double b = 0.5 * (log1p(-t * t) - log1p(-t0 * t0));
    double c = (stirlerr((double)x) + stirlerr((double)(m - x))) -
               stirlerr((double)m0) - stirlerr((double)(m - m0));
    double log_ratio = -(a + b + c);
    u128 j = k < 0 ? (u128)(-k) : (u128)k;
    if (j <= s)
        return log_ratio;
    return log_ratio - (2.0 * log((double)s) - log((double)j) - log((double)(j - 1)));
}

/* 1 accept, 0 reject, -1 fallback. */
static int accept(coins *c, u128 m, u128 m0, u128 x, __int128 k, uint64_t s)
{
    const double log2_64 = 44.3614195558365; /* 64 ln 2 */
    uint64_t v = word(c);
    u128 j = k < 0 ? (u128)(-k) : (u128)k;
    if ((x == m0 || x == m - m0) && j <= s)
        return 1;
    u128 lo_side = x < m - x ? x : m - x;
    if (lo_side < TAIL_MIN)
        return v ? 0 : -1;
    double lr = log_r_double(m, m0, x, k, s);
    if (log((double)v + 1.0) - log2_64 <= lr - ETA)
        return 1;
    if (v && log((double)v) - log2_64 >= lr + ETA)
        return 0;
    return -1;
}

/* Binomial(M, 1/2) into *x; OPE_OK or OPE_FALLBACK. */
static int binomial_half(coins *c, u128 m, u128 *x)
{
    if (m <= SMALL_M) {
        unsigned n = (unsigned)((m + 63) / 64), rem = (unsigned)(m % 64);
        u128 count = 0;
        for (unsigned i = 0; i < n; i++) {
            uint64_t w = word(c);
            if (i == n - 1 && rem)
                w >>= 64 - rem;
            count += (u128)__builtin_popcountll(w);
        }
        *x = count;
        return OPE_OK;
    }
    uint64_t s = isqrt_u128(m) + 1;
    u128 m0 = m / 2;
    uint64_t bound = 4 * s + 1;
    u128 span = (u128)1 << 64;
    u128 limit = span - span % bound;
    for (;;) {
        if (c->failed)
            return OPE_ERROR;
        uint64_t w;
        do
            w = word(c);
        while ((u128)w >= limit && !c->failed);
        uint64_t r = (uint64_t)((u128)w % bound);
        __int128 k;
        if (r < 2 * s + 1) {
            k = (__int128)r - (__int128)s;
        } else {
            int upper = r < 3 * s + 1;
            u128 lim = upper ? m - m0 : m0;
            uint64_t acc = word(c);
            u128 scaled = (u128)s << 64;
            u128 jmin = scaled / ((u128)acc + 1) + 1;
            if (jmin > lim)
                continue;
            if (acc == 0)
                return OPE_FALLBACK;
            u128 jmax = (scaled + acc - 1) / acc;
            if (jmin != jmax)
                return OPE_FALLBACK; /* the reference reads another word */
            k = upper ? (__int128)jmin : -(__int128)jmin;
        }
        __int128 xs = (__int128)m0 + k;
        if (xs < 0 || (u128)xs > m)
            continue;
        int a = accept(c, m, m0, (u128)xs, k, s);
        if (a < 0)
            return OPE_FALLBACK;
        if (a) {
            *x = (u128)xs;
            return OPE_OK;
        }
    }
}

static u128 uniform_bits(coins *c, unsigned bits) /* bits <= 128 */
{
    if (bits == 0)
        return 0;
    unsigned n = (bits + 63) / 64;
    u128 acc = 0;
    for (unsigned i = 0; i < n; i++)
        acc = (acc << 64) | word(c);
    return acc >> (64 * n - bits);
}

static void coins_init(coins *c, const ope_ctx *ctx, const unsigned char state[16])
{
    c->ctx = ctx;
    memcpy(c->state, state, 16);
    c->j = 0;
    c->has_pending = 0;
    c->failed = 0;
}

/* The walk shared by encryption (want_c = 0: follow m) and decryption (follow c). */
static int walk(const ope_ctx *ctx, int decrypting, uint64_t m, u128 cval, u128 *out_c,
                uint64_t *out_m)
{
    unsigned char state[16];
    memcpy(state, ctx->root, 16);
    u128 lo = 0, size = (u128)1 << ctx->d, rlo = 0;
    unsigned e = ctx->r, depth = 0;
    coins c;
    while (size > 1) {
        coins_init(&c, ctx, state);
        u128 x;
        int st = binomial_half(&c, size, &x);
        if (c.failed)
            return OPE_ERROR;
        if (st != OPE_OK)
            return st;
        u128 half = (u128)1 << (e - 1);
        if (x > half)
            x = half;
        if (size - x > half)
            x = size - half;
        e -= 1;
        int bit;
        if (decrypting ? cval < rlo + half : (u128)m < lo + x) {
            bit = 0;
            size = x;
        } else {
            bit = 1;
            lo += x;
            size -= x;
            rlo += half;
        }
        if (size == 0)
            return OPE_INVALID;
        if (!child(ctx, state, depth, bit))
            return OPE_ERROR;
        depth++;
    }
    coins_init(&c, ctx, state);
    u128 leaf = rlo + uniform_bits(&c, e);
    if (c.failed)
        return OPE_ERROR;
    if (decrypting) {
        if (leaf != cval)
            return OPE_INVALID;
        *out_m = (uint64_t)lo;
    } else {
        *out_c = leaf;
    }
    return OPE_OK;
}

EXPORT void ope_free(ope_ctx *ctx)
{
    if (ctx == NULL)
        return;
    EVP_CIPHER_CTX_free(ctx->e1);
    EVP_CIPHER_CTX_free(ctx->e2);
    OPENSSL_cleanse(ctx, sizeof *ctx);
    free(ctx);
}

EXPORT ope_ctx *ope_new(const unsigned char key[64], unsigned d, unsigned r)
{
    if (d < 1 || d > 64 || r < d || r > 128)
        return NULL;
    ope_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return NULL;
    ctx->d = d;
    ctx->r = r;
    ctx->e1 = EVP_CIPHER_CTX_new();
    ctx->e2 = EVP_CIPHER_CTX_new();
    unsigned char init[16] = {0, 1, (unsigned char)(d >> 8), (unsigned char)d,
                              (unsigned char)(r >> 8), (unsigned char)r};
    if (ctx->e1 == NULL || ctx->e2 == NULL ||
        EVP_EncryptInit_ex(ctx->e1, EVP_aes_256_ecb(), NULL, key, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx->e2, EVP_aes_256_ecb(), NULL, key + 32, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx->e1, 0) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx->e2, 0) != 1 || !aes(ctx->e1, init, ctx->root)) {
        ope_free(ctx);
        return NULL;
    }
    return ctx;
}

/* m < 2**D; out = the ciphertext as 16 big-endian bytes (R <= 128, left zero-padded). */
EXPORT int ope_encrypt(const ope_ctx *ctx, uint64_t m, unsigned char out[16])
{
    if (ctx->d < 64 && m >> ctx->d)
        return OPE_ERROR;
    u128 cval = 0;
    int st = walk(ctx, 0, m, 0, &cval, NULL);
    if (st == OPE_OK) {
        put_be64(out, (uint64_t)(cval >> 64));
        put_be64(out + 8, (uint64_t)cval);
    }
    return st;
}

EXPORT int ope_decrypt(const ope_ctx *ctx, const unsigned char in[16], uint64_t *m)
{
    u128 cval = ((u128)be64(in) << 64) | be64(in + 8);
    if (ctx->r < 128 && cval >> ctx->r)
        return OPE_INVALID;
    return walk(ctx, 1, 0, cval, NULL, m);
}
