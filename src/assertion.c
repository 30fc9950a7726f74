/* The certificate credential's client assertion: an RS256 or PS256 JWS over the claims Entra
 * checks (certificate-credentials doc; entra-signin.md §2), signed with libcrypto. The key stays
 * in an EVP_PKEY owned by the vl_cert; the password is only ever handed to libcrypto. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "assertion.h"

struct vl_cert {
    EVP_PKEY *key;
    char x5t[32];          /* base64url(SHA-1(DER)), no padding */
    char x5t256[48];       /* base64url(SHA-256(DER)) */
    char hex[41];          /* SHA-1 in upper-case hex */
};

static void set_err(char *err, size_t en, const char *msg) {
    if (err && en) snprintf(err, en, "%s", msg);
}

static size_t b64url(const unsigned char *p, size_t n, char *out) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = A[v >> 18 & 63]; out[o++] = A[v >> 12 & 63];
        out[o++] = A[v >> 6 & 63];  out[o++] = A[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = A[v >> 18 & 63]; out[o++] = A[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = A[v >> 18 & 63]; out[o++] = A[v >> 12 & 63]; out[o++] = A[v >> 6 & 63];
    }
    out[o] = 0;
    return o;
}

/* never a terminal prompt: without a password an encrypted key simply fails */
static int pass_cb(char *buf, int size, int rwflag, void *u) {
    size_t n;
    (void)rwflag;
    if (!u) return -1;
    n = strlen((const char *)u);
    if (n > (size_t)size) return -1;
    memcpy(buf, u, n);
    return (int)n;
}

/* takes ownership of x and key (both freed here on failure) */
static vl_cert *make(X509 *x, EVP_PKEY *key, char *err, size_t en) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dn = 0, i;
    vl_cert *k = NULL;
    if (!x || !key) {
        set_err(err, en, !x ? "the certificate cannot be read (a PEM \"CERTIFICATE\" block expected)"
                            : "the private key cannot be read (a PEM private key expected; wrong or missing password?)");
        goto out;
    }
    if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        set_err(err, en, "the private key is not an RSA key (Entra's RS256/PS256 assertions need one)");
        goto out;
    }
    if (X509_check_private_key(x, key) != 1) {
        set_err(err, en, "the private key does not belong to the certificate");
        goto out;
    }
    k = calloc(1, sizeof *k);
    if (!k) { set_err(err, en, "out of memory"); goto out; }
    if (!X509_digest(x, EVP_sha1(), d, &dn) || dn != 20) goto bad;
    b64url(d, dn, k->x5t);
    for (i = 0; i < dn; i++) snprintf(k->hex + 2 * i, 3, "%02X", d[i]);
    if (!X509_digest(x, EVP_sha256(), d, &dn) || dn != 32) goto bad;
    b64url(d, dn, k->x5t256);
    k->key = key;
    key = NULL;
    goto out;
bad:
    free(k);
    k = NULL;
    set_err(err, en, "the certificate's thumbprint cannot be computed");
out:
    X509_free(x);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return k;
}

vl_cert *vl_cert_load_pem(const char *cert_pem, size_t cl, const char *key_pem, size_t kl,
                          const char *password, char *err, size_t en) {
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    BIO *b;
    if (cl > 0x7fffffff || kl > 0x7fffffff) { set_err(err, en, "the certificate is too large"); return NULL; }
    if ((b = BIO_new_mem_buf(cert_pem, (int)cl)) != NULL) {
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        BIO_free(b);
    }
    if (x && (b = BIO_new_mem_buf(key_pem, (int)kl)) != NULL) {
        key = PEM_read_bio_PrivateKey(b, NULL, pass_cb, (void *)password);
        BIO_free(b);
    }
    return make(x, key, err, en);
}

vl_cert *vl_cert_load_pfx(const unsigned char *der, size_t n, const char *password, char *err, size_t en) {
    const unsigned char *p = der;
    PKCS12 *p12;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    if (n > 0x7fffffff) { set_err(err, en, "the PKCS#12 file is too large"); return NULL; }
    p12 = d2i_PKCS12(NULL, &p, (long)n);
    if (!p12) {
        ERR_clear_error();
        set_err(err, en, "the PKCS#12 (.pfx) data cannot be read");
        return NULL;
    }
    if (!PKCS12_parse(p12, password ? password : "", &key, &x, NULL)) {
        PKCS12_free(p12);
        ERR_clear_error();
        set_err(err, en, "the PKCS#12 (.pfx) file cannot be opened (wrong or missing password?)");
        return NULL;
    }
    PKCS12_free(p12);
    return make(x, key, err, en);
}

const char *vl_cert_thumbprint(const vl_cert *k) { return k->hex; }

void vl_cert_free(vl_cert *k) {
    if (!k) return;
    EVP_PKEY_free(k->key);
    free(k);
}

/* s as a JSON string (quotes added); client_id and aud are the client's own checked strings */
static size_t json_str(char *o, const char *s) {
    size_t n = 0;
    o[n++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { o[n++] = '\\'; o[n++] = (char)ch; }
        else if (ch < 0x20) n += (size_t)sprintf(o + n, "\\u%04x", ch);
        else o[n++] = (char)ch;
    }
    o[n++] = '"';
    o[n] = 0;
    return n;
}

char *vl_assertion_make(const vl_cert *k, int alg, const char *client_id, const char *aud,
                        long long now, long lifetime, char *err, size_t en) {
    char header[200], *claims = NULL, *out = NULL, jti[37];
    unsigned char rnd[16], *sig = NULL;
    size_t cap, hn, cn, sl = 0, n;
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pc = NULL;
    char *input = NULL;

    if (RAND_bytes(rnd, sizeof rnd) != 1) { set_err(err, en, "no random bytes for the assertion's jti"); goto done; }
    rnd[6] = (unsigned char)((rnd[6] & 0x0f) | 0x40);
    rnd[8] = (unsigned char)((rnd[8] & 0x3f) | 0x80);
    snprintf(jti, sizeof jti, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9], rnd[10],
             rnd[11], rnd[12], rnd[13], rnd[14], rnd[15]);
    hn = (size_t)snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"x5t\":\"%s\",\"x5t#S256\":\"%s\"}",
                          alg == VL_ALG_PS256 ? "PS256" : "RS256", k->x5t, k->x5t256);
    cap = 6 * (strlen(client_id) * 2 + strlen(aud)) + 200;
    claims = malloc(cap);
    if (!claims) goto oom;
    cn = (size_t)sprintf(claims, "{\"aud\":");
    cn += json_str(claims + cn, aud);
    cn += (size_t)sprintf(claims + cn, ",\"iss\":");
    cn += json_str(claims + cn, client_id);
    cn += (size_t)sprintf(claims + cn, ",\"sub\":");
    cn += json_str(claims + cn, client_id);
    cn += (size_t)sprintf(claims + cn, ",\"jti\":\"%s\",\"nbf\":%lld,\"iat\":%lld,\"exp\":%lld}", jti, now, now,
                          now + lifetime);
    /* base64url(header) "." base64url(claims) "." base64url(signature) */
    n = 4 * (hn + cn) / 3 + 8;
    input = malloc(n);
    if (!input) goto oom;
    n = b64url((const unsigned char *)header, hn, input);
    input[n++] = '.';
    n += b64url((const unsigned char *)claims, cn, input + n);
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, &pc, EVP_sha256(), NULL, k->key) != 1) goto sign_failed;
    if (alg == VL_ALG_PS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) != 1))
        goto sign_failed;
    if (EVP_DigestSign(md, NULL, &sl, (const unsigned char *)input, n) != 1) goto sign_failed;
    sig = malloc(sl);
    if (!sig) goto oom;
    if (EVP_DigestSign(md, sig, &sl, (const unsigned char *)input, n) != 1) goto sign_failed;
    out = malloc(n + 1 + 4 * sl / 3 + 4);
    if (!out) goto oom;
    memcpy(out, input, n);
    out[n] = '.';
    b64url(sig, sl, out + n + 1);
    goto done;
oom:
    set_err(err, en, "out of memory");
    goto done;
sign_failed:
    set_err(err, en, "the client assertion could not be signed");
done:
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    free(claims);
    free(input);
    free(sig);
    return out;
}
