-- JWTs with real signatures: RS256 (PKCS#1 v1.5) and PS256 (RSASSA-PSS, salt = digest length) over
-- SHA-256, verified and made with libcrypto (OpenSSL 3) through the LuaJIT FFI.  Certificates are
-- read from PEM; their SHA-1 and SHA-256 thumbprints (x5t, x5t#S256) are the DER's digests.
local ffi = require("ffi")
local json = require("json")
local util = require("util")

local M = {}

local DECLS = {
  "typedef struct bio_st BIO;",
  "typedef struct x509_st X509;",
  "typedef struct evp_pkey_st EVP_PKEY;",
  "typedef struct evp_md_ctx_st EVP_MD_CTX;",
  "typedef struct evp_md_st EVP_MD;",
  "typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;",
  "typedef struct engine_st ENGINE;",
  "BIO *BIO_new_mem_buf(const void *buf, int len);",
  "int BIO_free(BIO *a);",
  "X509 *PEM_read_bio_X509(BIO *bp, X509 **x, void *cb, void *u);",
  "void X509_free(X509 *a);",
  "EVP_PKEY *X509_get_pubkey(X509 *x);",
  "int i2d_X509(X509 *a, unsigned char **out);",
  "EVP_PKEY *PEM_read_bio_PrivateKey(BIO *bp, EVP_PKEY **x, void *cb, void *u);",
  "void EVP_PKEY_free(EVP_PKEY *pkey);",
  "EVP_MD_CTX *EVP_MD_CTX_new(void);",
  "void EVP_MD_CTX_free(EVP_MD_CTX *ctx);",
  "const EVP_MD *EVP_sha256(void);",
  "const EVP_MD *EVP_sha1(void);",
  "int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size, const EVP_MD *type, ENGINE *impl);",
  "int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey);",
  "int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen);",
  "int EVP_DigestSignInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey);",
  "int EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sigret, size_t *siglen, const unsigned char *tbs, size_t tbslen);",
  "int EVP_PKEY_CTX_set_rsa_padding(EVP_PKEY_CTX *ctx, int pad);",
  "int EVP_PKEY_CTX_set_rsa_pss_saltlen(EVP_PKEY_CTX *ctx, int saltlen);",
  "void ERR_clear_error(void);",
}
for _, d in ipairs(DECLS) do pcall(ffi.cdef, d) end   -- pcall: another module may have declared some

local C
for _, name in ipairs({ "crypto", "libcrypto.so.3" }) do
  local ok, lib = pcall(ffi.load, name)
  if ok then C = lib break end
end
if not C then error("jwt.lua: libcrypto (OpenSSL 3) not found") end

local RSA_PKCS1_PADDING, RSA_PKCS1_PSS_PADDING = 1, 6
local RSA_PSS_SALTLEN_DIGEST = -1

local function digest(md, data)
  local out = ffi.new("unsigned char[64]")
  local n = ffi.new("unsigned int[1]")
  if C.EVP_Digest(data, #data, out, n, md, nil) ~= 1 then return nil end
  return ffi.string(out, n[0])
end
function M.sha256(data) return digest(C.EVP_sha256(), data) end
function M.sha1(data) return digest(C.EVP_sha1(), data) end

function M.hex(s) return (s:gsub(".", function(c) return string.format("%02X", c:byte()) end)) end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

-- A certificate from PEM text: { pkey, der, x5t, x5t_s256 (base64url, unpadded), sha1_hex }, or nil, message.
function M.load_certificate(pem)
  local bio = C.BIO_new_mem_buf(pem, #pem)
  if bio == nil then return nil, "out of memory" end
  local x = C.PEM_read_bio_X509(bio, nil, nil, nil)
  C.BIO_free(bio)
  if x == nil then C.ERR_clear_error(); return nil, "not a PEM certificate" end
  local n = C.i2d_X509(x, nil)
  local buf = ffi.new("unsigned char[?]", n)
  local p = ffi.new("unsigned char*[1]", buf)
  C.i2d_X509(x, p)
  local der = ffi.string(buf, n)
  local pkey = C.X509_get_pubkey(x)
  C.X509_free(x)
  if pkey == nil then C.ERR_clear_error(); return nil, "the certificate has no usable public key" end
  local sha1 = M.sha1(der)
  return {
    pkey = ffi.gc(pkey, C.EVP_PKEY_free), der = der,
    x5t = util.b64url(sha1), x5t_s256 = util.b64url(M.sha256(der)), sha1_hex = M.hex(sha1),
  }
end

-- A private key from (unencrypted) PEM text, or nil, message.
function M.load_private_key(pem)
  local bio = C.BIO_new_mem_buf(pem, #pem)
  if bio == nil then return nil, "out of memory" end
  local k = C.PEM_read_bio_PrivateKey(bio, nil, nil, nil)
  C.BIO_free(bio)
  if k == nil then C.ERR_clear_error(); return nil, "not an unencrypted PEM private key" end
  return ffi.gc(k, C.EVP_PKEY_free)
end

local function set_padding(pctx, alg)
  if alg == "PS256" then
    return C.EVP_PKEY_CTX_set_rsa_padding(pctx[0], RSA_PKCS1_PSS_PADDING) > 0
      and C.EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx[0], RSA_PSS_SALTLEN_DIGEST) > 0
  end
  return C.EVP_PKEY_CTX_set_rsa_padding(pctx[0], RSA_PKCS1_PADDING) > 0
end

-- True when sig is a valid alg ("RS256" | "PS256") signature of data under pkey.
function M.verify(pkey, alg, data, sig)
  if alg ~= "RS256" and alg ~= "PS256" then return false end
  local ctx = C.EVP_MD_CTX_new()
  if ctx == nil then return false end
  local pctx = ffi.new("EVP_PKEY_CTX*[1]")
  local ok = C.EVP_DigestVerifyInit(ctx, pctx, C.EVP_sha256(), nil, pkey) == 1
    and set_padding(pctx, alg)
    and C.EVP_DigestVerify(ctx, sig, #sig, data, #data) == 1
  C.EVP_MD_CTX_free(ctx)
  C.ERR_clear_error()
  return ok
end

function M.sign(pkey, alg, data)
  local ctx = C.EVP_MD_CTX_new()
  if ctx == nil then return nil end
  local pctx = ffi.new("EVP_PKEY_CTX*[1]")
  local len = ffi.new("size_t[1]")
  local sig
  if C.EVP_DigestSignInit(ctx, pctx, C.EVP_sha256(), nil, pkey) == 1 and set_padding(pctx, alg)
      and C.EVP_DigestSign(ctx, nil, len, data, #data) == 1 then
    local buf = ffi.new("unsigned char[?]", len[0])
    if C.EVP_DigestSign(ctx, buf, len, data, #data) == 1 then sig = ffi.string(buf, len[0]) end
  end
  C.EVP_MD_CTX_free(ctx)
  C.ERR_clear_error()
  return sig
end

-- A compact JWS: header and claims tables, signed with pkey.
function M.encode(header, claims, pkey)
  local input = util.b64url(json.encode(header)) .. "." .. util.b64url(json.encode(claims))
  local sig = M.sign(pkey, header.alg, input)
  if not sig then return nil end
  return input .. "." .. util.b64url(sig)
end

-- Splits and decodes a compact JWS: { header, claims, signing_input, signature } or nil, reason.
function M.decode(token)
  if type(token) ~= "string" then return nil, "not a string" end
  local h, p, s = token:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]*)$")
  if not h then return nil, "not three base64url parts" end
  local hj, pj, sig = util.b64url_decode(h), util.b64url_decode(p), util.b64url_decode(s)
  if not hj or not pj or not sig then return nil, "bad base64url" end
  local header = json.decode(hj)
  local claims = json.decode(pj)
  if type(header) ~= "table" or type(claims) ~= "table" or json.is_array(header) or json.is_array(claims) then
    return nil, "header or payload is not a JSON object"
  end
  return { header = header, claims = claims, signing_input = h .. "." .. p, signature = sig }
end

-- Reads PEM files of the run directory (EMU_DIR) or an absolute path.
function M.run_file(name)
  if type(name) ~= "string" or name == "" then return nil, "no file name" end
  local path = name:sub(1, 1) == "/" and name or ((rawget(_G, "EMU_DIR") or ".") .. "/" .. name)
  local text, err = read_file(path)
  if not text then return nil, path .. ": " .. tostring(err) end
  return text, path
end

return M
