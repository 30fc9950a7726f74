/* assertion: the signed JWT client assertion of the certificate credential (Entra's
 * private_key_jwt). Plain C over libcrypto: no Lua, no libcurl, no files (the Lua layer reads
 * them and passes the PEM text or the PKCS#12 bytes). */
#ifndef VL_ASSERTION_H
#define VL_ASSERTION_H

#include <stddef.h>

typedef struct vl_cert vl_cert;

enum { VL_ALG_RS256, VL_ALG_PS256 };

/* A certificate (the first one of cert_pem) and its RSA private key (key_pem, encrypted or not;
 * it may be the same text). password may be NULL. NULL and a message in err (no key material,
 * no password) when they cannot be read or do not belong together. */
vl_cert *vl_cert_load_pem(const char *cert_pem, size_t cl, const char *key_pem, size_t kl,
                          const char *password, char *err, size_t en);
/* The same from a PKCS#12 (.pfx) file's bytes. */
vl_cert *vl_cert_load_pfx(const unsigned char *der, size_t n, const char *password, char *err, size_t en);

/* The certificate's SHA-1 thumbprint in upper-case hex (what the portal shows; not secret). */
const char *vl_cert_thumbprint(const vl_cert *k);

/* A compact JWS: header {alg, typ, x5t, x5t#S256}, claims {aud, iss = sub = client_id, jti
 * (random, from the OS), nbf = iat = now, exp = now + lifetime}. malloc'd, NULL on failure. */
char *vl_assertion_make(const vl_cert *k, int alg, const char *client_id, const char *aud,
                        long long now, long lifetime, char *err, size_t en);

void vl_cert_free(vl_cert *k);

#endif
