/* Standalone memory-safety harness for the UDFs, run under ASan/UBSan (`make -C udf check`)
 * or valgrind (`make -C udf valgrind`): calls every entry point the way mariadbd does, with
 * exactly-sized heap arguments (so any overread is caught), NULLs, empty and huge values,
 * random bytes and near-valid values, plus a few known answers. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#define MAX_ARGS 4

/* The entry points, as mariadbd resolves them by name. */
typedef bool (*init_fn)(UDF_INIT *, UDF_ARGS *, char *);
bool cryptdb_rnd_decrypt_init(UDF_INIT *, UDF_ARGS *, char *);
void cryptdb_rnd_decrypt_deinit(UDF_INIT *);
char *cryptdb_rnd_decrypt(UDF_INIT *, UDF_ARGS *, char *, unsigned long *, char *, char *);
bool cryptdb_hom_add_init(UDF_INIT *, UDF_ARGS *, char *);
void cryptdb_hom_add_deinit(UDF_INIT *);
char *cryptdb_hom_add(UDF_INIT *, UDF_ARGS *, char *, unsigned long *, char *, char *);
bool cryptdb_hom_sum_init(UDF_INIT *, UDF_ARGS *, char *);
void cryptdb_hom_sum_deinit(UDF_INIT *);
char *cryptdb_hom_sum(UDF_INIT *, UDF_ARGS *, char *, unsigned long *, char *, char *);
void cryptdb_hom_sum_clear(UDF_INIT *, char *, char *);
void cryptdb_hom_sum_add(UDF_INIT *, UDF_ARGS *, char *, char *);
void cryptdb_hom_sum_remove(UDF_INIT *, UDF_ARGS *, char *, char *);
void cryptdb_hom_sum_reset(UDF_INIT *, UDF_ARGS *, char *, char *);
bool cryptdb_search_match_init(UDF_INIT *, UDF_ARGS *, char *);
void cryptdb_search_match_deinit(UDF_INIT *);
long long cryptdb_search_match(UDF_INIT *, UDF_ARGS *, char *, char *);

static int failures;
#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);       \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

/* xorshift: reproducible without pulling in anything else */
static uint64_t seed = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

typedef struct {
    UDF_ARGS args;
    enum Item_result types[MAX_ARGS];
    char *vals[MAX_ARGS];
    unsigned long lens[MAX_ARGS];
    char maybe_null[MAX_ARGS];
} call;

static void call_init(call *c, unsigned n)
{
    memset(c, 0, sizeof *c);
    c->args.arg_count = n;
    c->args.arg_type = c->types;
    c->args.args = c->vals;
    c->args.lengths = c->lens;
    c->args.maybe_null = c->maybe_null;
    for (unsigned i = 0; i < MAX_ARGS; i++)
        c->types[i] = STRING_RESULT;
}

/* Sets argument i to an exactly-sized heap copy (NULL data: SQL NULL). */
static void set_arg(call *c, unsigned i, const void *data, size_t len)
{
    free(c->vals[i]);
    c->vals[i] = NULL;
    c->lens[i] = data ? len : 0;
    if (data) {
        c->vals[i] = malloc(len ? len : 1);
        memcpy(c->vals[i], data, len);
    }
}

static void set_random(call *c, unsigned i, size_t len)
{
    unsigned char *buf = malloc(len ? len : 1);
    for (size_t k = 0; k < len; k++)
        buf[k] = (unsigned char)rnd();
    set_arg(c, i, buf, len);
    free(buf);
}

/* Random argument: NULL, empty, typical sizes, near-valid sizes, occasionally huge. */
static void set_garbage(call *c, unsigned i)
{
    static const size_t sizes[] = {1, 2, 7, 8, 15, 16, 17, 24, 25, 31, 32, 33, 49, 255, 256, 2048, 2049};
    uint64_t r = rnd() % 100;
    if (r < 10)
        set_arg(c, i, NULL, 0);
    else if (r < 15)
        set_arg(c, i, "", 0);
    else if (r < 17)
        set_random(c, i, (2u << 20) + (rnd() % 3));
    else
        set_random(c, i, sizes[rnd() % (sizeof sizes / sizeof *sizes)]);
}

static void call_free(call *c)
{
    for (unsigned i = 0; i < MAX_ARGS; i++)
        set_arg(c, i, NULL, 0);
}

static void check_init_rejects(init_fn init, unsigned good_count)
{
    char msg[MYSQL_ERRMSG_SIZE];
    UDF_INIT initid;
    call c;
    for (unsigned n = 0; n < MAX_ARGS; n++) {
        if (n == good_count)
            continue;
        call_init(&c, n);
        memset(&initid, 0, sizeof initid);
        CHECK(init(&initid, &c.args, msg) == 1);
        CHECK(strlen(msg) < MYSQL_ERRMSG_SIZE);
    }
    for (unsigned i = 0; i < good_count; i++) {
        call_init(&c, good_count);
        c.types[i] = INT_RESULT;
        memset(&initid, 0, sizeof initid);
        CHECK(init(&initid, &c.args, msg) == 1);
    }
}

static void fuzz_rnd(void)
{
    char msg[MYSQL_ERRMSG_SIZE], result[255], is_null, error;
    unsigned long len;
    UDF_INIT initid = {0};
    call c;
    call_init(&c, 3);
    c.lens[0] = 4294967295ul; /* LONGBLOB column: the max_length the server passes */
    CHECK(cryptdb_rnd_decrypt_init(&initid, &c.args, msg) == 0);
    for (int round = 0; round < 3000; round++) {
        set_garbage(&c, 0);
        if (rnd() % 2) set_random(&c, 1, 32); else set_garbage(&c, 1);
        if (rnd() % 2) set_random(&c, 2, 16); else set_garbage(&c, 2);
        is_null = error = 0;
        char *out = cryptdb_rnd_decrypt(&initid, &c.args, result, &len, &is_null, &error);
        bool valid = c.vals[0] && c.vals[1] && c.vals[2] && c.lens[1] == 32 && c.lens[2] == 16;
        CHECK(valid ? (out != NULL && !is_null && len == c.lens[0]) : (out == NULL && is_null));
        if (out && len)
            CHECK(((volatile char *)out)[len - 1] == out[len - 1]); /* touch the last byte */
    }
    /* Known answer: CTR twice is the identity. */
    unsigned char key[32] = {1}, iv[16] = {2}, pt[40] = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
    set_arg(&c, 0, pt, sizeof pt);
    set_arg(&c, 1, key, 32);
    set_arg(&c, 2, iv, 16);
    char *once = cryptdb_rnd_decrypt(&initid, &c.args, result, &len, &is_null, &error);
    unsigned char tmp[40];
    memcpy(tmp, once, sizeof tmp);
    set_arg(&c, 0, tmp, sizeof tmp);
    char *twice = cryptdb_rnd_decrypt(&initid, &c.args, result, &len, &is_null, &error);
    CHECK(memcmp(twice, pt, sizeof pt) == 0);
    cryptdb_rnd_decrypt_deinit(&initid);
    call_free(&c);
}

/* n2 = 35^2 = 1225 = 0x04C9: tiny, but enough for known answers. */
static const unsigned char N2[] = {0x04, 0xC9};

static void set_near_ct(call *c, unsigned i, const unsigned char *n2, size_t n2_len)
{
    if (rnd() % 4 == 0) {
        set_garbage(c, i);
        return;
    }
    set_random(c, i, n2 ? n2_len : 0);
    if (n2 && n2_len && rnd() % 2)
        c->vals[i][0] = (char)(rnd() % (n2[0] + 1u)); /* often below n2 */
}

static void fuzz_hom_add(void)
{
    char msg[MYSQL_ERRMSG_SIZE], result[255], is_null, error;
    unsigned long len;
    UDF_INIT initid = {0};
    call c;
    call_init(&c, 3);
    c.lens[2] = 65535;
    CHECK(cryptdb_hom_add_init(&initid, &c.args, msg) == 0);
    for (int round = 0; round < 3000; round++) {
        if (rnd() % 3) {
            set_arg(&c, 2, N2, sizeof N2);
        } else {
            set_garbage(&c, 2);
            if (c.vals[2] && c.lens[2]) {
                c.vals[2][0] |= 1;
                c.vals[2][c.lens[2] - 1] |= 1;
            }
        }
        set_near_ct(&c, 0, (unsigned char *)c.vals[2], c.lens[2]);
        set_near_ct(&c, 1, (unsigned char *)c.vals[2], c.lens[2]);
        is_null = error = 0;
        char *out = cryptdb_hom_add(&initid, &c.args, result, &len, &is_null, &error);
        CHECK(out == NULL || len == c.lens[2]);
        CHECK(!error);
    }
    /* 2 * 3 = 6; 1224 * 1224 = 1 (mod 1225) */
    unsigned char two[] = {0, 2}, three[] = {0, 3}, m1[] = {0x04, 0xC8};
    set_arg(&c, 2, N2, 2);
    set_arg(&c, 0, two, 2);
    set_arg(&c, 1, three, 2);
    char *out = cryptdb_hom_add(&initid, &c.args, result, &len, &is_null, &error);
    CHECK(out && len == 2 && out[0] == 0 && out[1] == 6);
    set_arg(&c, 0, m1, 2);
    set_arg(&c, 1, m1, 2);
    out = cryptdb_hom_add(&initid, &c.args, result, &len, &is_null, &error);
    CHECK(out && len == 2 && out[0] == 0 && out[1] == 1);
    cryptdb_hom_add_deinit(&initid);
    call_free(&c);
}

static void fuzz_hom_sum(void)
{
    char msg[MYSQL_ERRMSG_SIZE], result[255], is_null, error;
    unsigned long len;
    UDF_INIT initid = {0};
    call c;
    call_init(&c, 2);
    c.lens[1] = 65535;
    CHECK(cryptdb_hom_sum_init(&initid, &c.args, msg) == 0);
    for (int group = 0; group < 500; group++) {
        is_null = error = 0;
        cryptdb_hom_sum_clear(&initid, &is_null, &error);
        int rows = (int)(rnd() % 12);
        for (int r = 0; r < rows; r++) {
            if (rnd() % 4)
                set_arg(&c, 1, N2, sizeof N2);
            else
                set_garbage(&c, 1);
            set_near_ct(&c, 0, N2, sizeof N2);
            switch (rnd() % 4) {
            case 0: cryptdb_hom_sum_remove(&initid, &c.args, &is_null, &error); break;
            case 1: cryptdb_hom_sum_reset(&initid, &c.args, &is_null, &error); break;
            default: cryptdb_hom_sum_add(&initid, &c.args, &is_null, &error);
            }
        }
        char *out = cryptdb_hom_sum(&initid, &c.args, result, &len, &is_null, &error);
        CHECK(out == NULL || len == sizeof N2);
    }
    /* 2 * 3 * 4 = 24, then remove 3: 8 */
    unsigned char v[3][2] = {{0, 2}, {0, 3}, {0, 4}};
    cryptdb_hom_sum_clear(&initid, &is_null, &error);
    set_arg(&c, 1, N2, 2);
    for (int i = 0; i < 3; i++) {
        set_arg(&c, 0, v[i], 2);
        cryptdb_hom_sum_add(&initid, &c.args, &is_null, &error);
    }
    is_null = error = 0;
    char *out = cryptdb_hom_sum(&initid, &c.args, result, &len, &is_null, &error);
    CHECK(out && len == 2 && out[1] == 24);
    set_arg(&c, 0, v[1], 2);
    cryptdb_hom_sum_remove(&initid, &c.args, &is_null, &error);
    out = cryptdb_hom_sum(&initid, &c.args, result, &len, &is_null, &error);
    CHECK(out && len == 2 && out[1] == 8);
    cryptdb_hom_sum_deinit(&initid);
    call_free(&c);
}

static void fuzz_search(void)
{
    char msg[MYSQL_ERRMSG_SIZE], is_null, error;
    UDF_INIT initid = {0};
    call c;
    call_init(&c, 2);
    CHECK(cryptdb_search_match_init(&initid, &c.args, msg) == 0);
    for (int round = 0; round < 3000; round++) {
        size_t entries = rnd() % 5;
        if (rnd() % 3) {
            set_random(&c, 0, 1 + 24 * entries);
            c.vals[0][0] = 1;
        } else {
            set_garbage(&c, 0);
        }
        if (rnd() % 2) set_random(&c, 1, 32); else set_garbage(&c, 1);
        is_null = error = 0;
        long long r = cryptdb_search_match(&initid, &c.args, &is_null, &error);
        CHECK(is_null || r == 0 || r == 1);
        CHECK(!error);
    }
    cryptdb_search_match_deinit(&initid);
    call_free(&c);
}

int main(void)
{
    check_init_rejects(cryptdb_rnd_decrypt_init, 3);
    check_init_rejects(cryptdb_hom_add_init, 3);
    check_init_rejects(cryptdb_hom_sum_init, 2);
    check_init_rejects(cryptdb_search_match_init, 2);
    fuzz_rnd();
    fuzz_hom_add();
    fuzz_hom_sum();
    fuzz_search();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    puts("harness: all checks passed");
    return 0;
}
