/* cryptdb_rnd_decrypt(ct, key, iv): peels the RND layer off the Eq and Ord onions.
 *
 * RND is AES-256-CTR with the per-row 16-byte IV as the whole initial counter block (the
 * counter is the full 128-bit big-endian block, as OpenSSL and pyca increment it), so the
 * output has the input's length. The proxy lowers a column with
 *   UPDATE t SET c_eq = cryptdb_rnd_decrypt(c_eq, <key>, c_iv)
 * NULL ciphertext, key or IV gives NULL; a key that is not 32 bytes or an IV that is not 16
 * bytes gives NULL too, so a bad row never aborts the statement halfway.
 */
#include <openssl/evp.h>

#include "udf_common.h"

#define RND_KEY_LEN 32
#define RND_IV_LEN 16

typedef struct {
    EVP_CIPHER *cipher; /* fetched once: an implicit fetch per row costs more than the AES */
    EVP_CIPHER_CTX *ctx;
    udf_buf out; /* per-statement output buffer: values reach max_allowed_packet (1 MiB+) */
} rnd_state;

UDF_EXPORT bool cryptdb_rnd_decrypt_init(UDF_INIT *initid, UDF_ARGS *args, char *message)
{
    static const char *const names[] = {"ct", "key", "iv"};
    if (udf_check_args(args, message, "cryptdb_rnd_decrypt", names, 3))
        return 1;
    rnd_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return udf_fail(message, "cryptdb_rnd_decrypt: out of memory");
    st->cipher = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
    st->ctx = EVP_CIPHER_CTX_new();
    if (st->cipher == NULL || st->ctx == NULL ||
        EVP_DecryptInit_ex(st->ctx, st->cipher, NULL, NULL, NULL) != 1) {
        EVP_CIPHER_CTX_free(st->ctx);
        EVP_CIPHER_free(st->cipher);
        free(st);
        return udf_fail(message, "cryptdb_rnd_decrypt: OpenSSL AES-256-CTR unavailable");
    }
    initid->ptr = (char *)st;
    initid->maybe_null = 1;
    initid->const_item = 0;
    /* In _init lengths[] holds the argument's maximum length; CTR keeps the length. */
    initid->max_length = args->lengths[0];
    return 0;
}

UDF_EXPORT void cryptdb_rnd_decrypt_deinit(UDF_INIT *initid)
{
    rnd_state *st = (rnd_state *)initid->ptr;
    if (st == NULL)
        return;
    EVP_CIPHER_CTX_free(st->ctx);
    EVP_CIPHER_free(st->cipher);
    udf_buf_free(&st->out);
    free(st);
    initid->ptr = NULL;
}

UDF_EXPORT char *cryptdb_rnd_decrypt(UDF_INIT *initid, UDF_ARGS *args, char *result,
                                     unsigned long *length, char *is_null, char *error)
{
    (void)result;
    rnd_state *st = (rnd_state *)initid->ptr;
    const unsigned char *ct = (const unsigned char *)args->args[0];
    const unsigned char *key = (const unsigned char *)args->args[1];
    const unsigned char *iv = (const unsigned char *)args->args[2];
    if (ct == NULL || key == NULL || iv == NULL || args->lengths[1] != RND_KEY_LEN ||
        args->lengths[2] != RND_IV_LEN) {
        *is_null = 1;
        return NULL;
    }
    size_t n = args->lengths[0];
    /* +1: a zero-length value still gets a valid, non-NULL pointer. */
    if (!udf_buf_reserve(&st->out, n + 1)) {
        *error = 1;
        return NULL;
    }
    if (EVP_DecryptInit_ex(st->ctx, NULL, NULL, key, iv) != 1) /* new key and counter */
        goto fail;
    /* EVP lengths are int: feed huge values in chunks; CTR carries its position across. */
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (chunk > (size_t)1 << 30)
            chunk = (size_t)1 << 30;
        int outl = 0;
        if (EVP_DecryptUpdate(st->ctx, st->out.data + done, &outl, ct + done, (int)chunk) != 1 ||
            (size_t)outl != chunk)
            goto fail;
        done += chunk;
    }
    *length = n;
    return (char *)st->out.data;
fail:
    *error = 1;
    return NULL;
}
