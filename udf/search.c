/* cryptdb_search_match(stored, token): does a stored SEARCH ciphertext contain the word whose
 * token is given?
 *
 * stored = 0x01 || entry*, entry = salt(8) || tag(16), tag = HMAC-SHA256(word token, salt)[:16].
 * Returns 1 if some entry's tag equals HMAC-SHA256(token, salt)[:16], 0 if none (also for a
 * value with no words), NULL if stored is NULL or malformed (other version byte, length not
 * 1 + 24k) or the token is NULL or not 32 bytes. The proxy filters with
 *   SELECT ... WHERE cryptdb_search_match(c_search, <token>) = 1
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "udf_common.h"

#define SEARCH_VERSION 0x01
#define SEARCH_TOKEN_LEN 32
#define SEARCH_SALT_LEN 8
#define SEARCH_TAG_LEN 16
#define SEARCH_ENTRY_LEN (SEARCH_SALT_LEN + SEARCH_TAG_LEN)

typedef struct {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    unsigned char token[SEARCH_TOKEN_LEN]; /* the key ctx holds; normally constant per query */
    bool keyed;
} search_state;

static void search_free(search_state *st)
{
    EVP_MAC_CTX_free(st->ctx);
    EVP_MAC_free(st->mac);
    OPENSSL_cleanse(st->token, sizeof st->token);
    free(st);
}

UDF_EXPORT bool cryptdb_search_match_init(UDF_INIT *initid, UDF_ARGS *args, char *message)
{
    static const char *const names[] = {"stored", "token"};
    if (udf_check_args(args, message, "cryptdb_search_match", names, 2))
        return 1;
    search_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return udf_fail(message, "cryptdb_search_match: out of memory");
    st->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    st->ctx = st->mac ? EVP_MAC_CTX_new(st->mac) : NULL;
    if (st->ctx == NULL) {
        search_free(st);
        return udf_fail(message, "cryptdb_search_match: OpenSSL HMAC unavailable");
    }
    initid->ptr = (char *)st;
    initid->maybe_null = 1;
    initid->const_item = 0;
    return 0;
}

UDF_EXPORT void cryptdb_search_match_deinit(UDF_INIT *initid)
{
    if (initid->ptr != NULL)
        search_free((search_state *)initid->ptr);
    initid->ptr = NULL;
}

/* Keys the HMAC context with `token` unless it already holds it. */
static bool search_set_token(search_state *st, const unsigned char *token)
{
    if (st->keyed && CRYPTO_memcmp(st->token, token, SEARCH_TOKEN_LEN) == 0)
        return true;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    st->keyed = false;
    if (EVP_MAC_init(st->ctx, token, SEARCH_TOKEN_LEN, params) != 1)
        return false;
    memcpy(st->token, token, SEARCH_TOKEN_LEN);
    st->keyed = true;
    return true;
}

UDF_EXPORT long long cryptdb_search_match(UDF_INIT *initid, UDF_ARGS *args, char *is_null,
                                          char *error)
{
    search_state *st = (search_state *)initid->ptr;
    const unsigned char *stored = (const unsigned char *)args->args[0];
    const unsigned char *token = (const unsigned char *)args->args[1];
    size_t len = args->lengths[0];
    if (stored == NULL || token == NULL || args->lengths[1] != SEARCH_TOKEN_LEN || len < 1 ||
        stored[0] != SEARCH_VERSION || (len - 1) % SEARCH_ENTRY_LEN != 0) {
        *is_null = 1;
        return 0;
    }
    if (!search_set_token(st, token)) {
        *error = 1;
        return 0;
    }
    /* Every entry is checked (no early exit), so the time depends only on the length. */
    int found = 0;
    for (size_t off = 1; off < len; off += SEARCH_ENTRY_LEN) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t mac_len = 0;
        /* NULL key: restart with the key already set (HMAC keeps the padded key states). */
        if (EVP_MAC_init(st->ctx, NULL, 0, NULL) != 1 ||
            EVP_MAC_update(st->ctx, stored + off, SEARCH_SALT_LEN) != 1 ||
            EVP_MAC_final(st->ctx, mac, &mac_len, sizeof mac) != 1 || mac_len < SEARCH_TAG_LEN) {
            *error = 1;
            return 0;
        }
        found |= CRYPTO_memcmp(mac, stored + off + SEARCH_SALT_LEN, SEARCH_TAG_LEN) == 0;
    }
    return found;
}
