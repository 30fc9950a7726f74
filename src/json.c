/* JSON: decoding through a private lua-cjson safe instance, encoding in C. See json.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luacompat.h"

#include "json.h"

/* Registry key (its address) of the cjson instance's decode function. Never written. */
static const char vl_json_decode_key = 'd';

void vl_json_open(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_json_decode_key) == LUA_TFUNCTION) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson.safe");
    lua_call(L, 1, 1);                               /* cjson.safe */
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);                               /* private instance */
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, VL_JSON_MAX_DEPTH);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode_max_depth");
    lua_pushinteger(L, VL_JSON_MAX_DEPTH);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode");
    luaL_checktype(L, -1, LUA_TFUNCTION);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &vl_json_decode_key);
    lua_pop(L, 2);
}

void vl_json_push_decoder(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_json_decode_key);
}

int vl_json_decode_at(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &vl_json_decode_key) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushliteral(L, "vivalearning: JSON decoder not initialised");
        return 0;
    }
    lua_pushvalue(L, idx);
    /* cjson.safe raises only for memory errors: they go on up, never pass for bad JSON */
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) lua_error(L);
    if (lua_isnil(L, -2)) {
        if (!lua_isstring(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "JSON decode failed");
        }
        return 0;
    }
    lua_pop(L, 1);
    return 1;
}

int vl_json_decode(lua_State *L, const char *s, size_t n) {
    lua_pushlstring(L, s, n);
    int ok = vl_json_decode_at(L, -1);
    /* stack: text, r1 [, r2] */
    if (ok) {
        lua_remove(L, -2);
        return 1;
    }
    lua_remove(L, -3);
    return 0;
}

/* ------------------------------------------------------------------ writers */

/* 0: copy as is; 1: escape; 2: start of a multi-byte sequence (or invalid) */
static const unsigned char esc_class[256] = {
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
};

int vl_json_put_string(vl_buf *b, const char *str, size_t n, int check_utf8) {
    const unsigned char *s = (const unsigned char *)str;
    static const char hex[] = "0123456789abcdef";
    if (b->cap - b->n < n + 2) vl_buf_grow(b, n + 2);
    b->p[b->n++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && esc_class[s[j]] == 0) j++;
        if (j > i) {
            vl_buf_addn(b, (const char *)s + i, j - i);
            i = j;
            if (i == n) break;
        }
        unsigned c = s[i];
        if (esc_class[c] == 2) {
            size_t k = check_utf8 ? vl_utf8_seq(s + i, n - i) : 1;
            if (!k) return 0;
            vl_buf_addn(b, (const char *)s + i, k);
            i += k;
            continue;
        }
        char e[6];
        size_t el = 2;
        e[0] = '\\';
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            e[1] = 'u'; e[2] = '0'; e[3] = '0'; e[4] = hex[c >> 4]; e[5] = hex[c & 15];
            el = 6;
        }
        vl_buf_addn(b, e, el);
        i++;
    }
    vl_buf_addc(b, '"');
    return 1;
}

void vl_json_put_integer(vl_buf *b, lua_Integer v) {
    char tmp[24];
    char *e = tmp + sizeof tmp, *p = e;
    lua_Unsigned u = v < 0 ? (lua_Unsigned)0 - (lua_Unsigned)v : (lua_Unsigned)v;
    do {
        *--p = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    vl_buf_addn(b, p, (size_t)(e - p));
}

int vl_json_put_number(vl_buf *b, lua_Number d) {
    if (!isfinite(d)) return 0;
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        vl_json_put_integer(b, (lua_Integer)d);
        return 1;
    }
    char tmp[64];
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof tmp, "%.*g", prec, (double)d);
        if (strtod(tmp, NULL) == (double)d) break;  /* same locale both ways */
    }
    /* Replace whatever the locale uses as decimal point by '.'. */
    char out[64];
    size_t o = 0;
    for (int i = 0; i < len && o < sizeof out; i++) {
        char c = tmp[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E') {
            out[o++] = c;
        } else {
            out[o++] = '.';
            while (i + 1 < len && !((tmp[i + 1] >= '0' && tmp[i + 1] <= '9') || tmp[i + 1] == 'e' ||
                                    tmp[i + 1] == 'E'))
                i++;
        }
    }
    vl_buf_addn(b, out, o);
    return 1;
}

static void put_key(vl_buf *b, int kidx) {
    lua_State *L = b->L;
    switch (lua_type(L, kidx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, kidx, &n);
        if (!vl_json_put_string(b, s, n, 1)) luaL_error(L, "cannot encode key: invalid UTF-8");
        break;
    }
    case LUA_TNUMBER: {
        lua_Integer i;
        vl_buf_addc(b, '"');
        if (lua_isinteger(L, kidx)) {
            vl_json_put_integer(b, lua_tointeger(L, kidx));
        } else {
            lua_Number d = lua_tonumber(L, kidx);
            if (lua_numbertointeger(d, &i) && (lua_Number)i == d) vl_json_put_integer(b, i);
            else if (!vl_json_put_number(b, d)) luaL_error(L, "cannot encode key: NaN or Infinity");
        }
        vl_buf_addc(b, '"');
        break;
    }
    default:
        luaL_error(L, "cannot encode table key of type %s", luaL_typename(L, kidx));
    }
}

void vl_json_put_value(vl_buf *b, int idx, int depth) {
    lua_State *L = b->L;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        vl_buf_addlit(b, "null");
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) vl_buf_addlit(b, "true");
        else vl_buf_addlit(b, "false");
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) vl_json_put_integer(b, lua_tointeger(L, idx));
        else if (!vl_json_put_number(b, lua_tonumber(L, idx)))
            luaL_error(L, "cannot encode NaN or Infinity");
        return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (!vl_json_put_string(b, s, n, 1)) luaL_error(L, "cannot encode string: invalid UTF-8");
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            vl_buf_addlit(b, "null");
            return;
        }
        break;
    case LUA_TUSERDATA:
        if (b->put_udata) {
            b->put_udata(b, idx);
            return;
        }
        break;
    case LUA_TTABLE: {
        if (depth >= VL_JSON_MAX_DEPTH) luaL_error(L, "cannot encode: nesting deeper than %d (cycle?)",
                                                    VL_JSON_MAX_DEPTH);
        luaL_checkstack(L, 4, "JSON encode");
        lua_Unsigned len = lua_rawlen(L, idx);
        int is_array = 0;
        if (len > 0) {
            lua_Unsigned count = 0;
            is_array = 1;
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                lua_pop(L, 1);
                if (!lua_isinteger(L, -1) || ++count > len) {
                    lua_pop(L, 1);
                    is_array = 0;
                    break;
                }
            }
            if (is_array && count != len) is_array = 0;
        }
        if (is_array) {
            vl_buf_addc(b, '[');
            for (lua_Unsigned i = 1; i <= len; i++) {
                if (i > 1) vl_buf_addc(b, ',');
                lua_rawgeti(L, idx, (lua_Integer)i);
                vl_json_put_value(b, -1, depth + 1);
                lua_pop(L, 1);
            }
            vl_buf_addc(b, ']');
            return;
        }
        int first = 1;
        vl_buf_addc(b, '{');
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (!first) vl_buf_addc(b, ',');
            first = 0;
            put_key(b, -2);
            vl_buf_addc(b, ':');
            vl_json_put_value(b, -1, depth + 1);
            lua_pop(L, 1);
        }
        vl_buf_addc(b, '}');
        return;
    }
    default:
        break;
    }
    luaL_error(L, "cannot encode a value of type %s", luaL_typename(L, idx));
}

static int json_encode_protected(lua_State *L) {
    vl_buf b;
    vl_buf_udata_fn put = *(const vl_buf_udata_fn *)lua_touserdata(L, 2);
    lua_settop(L, 1);
    vl_buf_init(L, &b);
    b.put_udata = put;
    vl_json_put_value(&b, 1, 0);
    vl_buf_finish(&b);
    return 1;
}

int vl_json_encode_with(lua_State *L, int idx, vl_buf_udata_fn put_udata) {
    int st;
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, json_encode_protected);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, &put_udata);   /* a function pointer, passed by its address */
    if ((st = lua_pcall(L, 2, 1, 0)) != LUA_OK) {
        if (st == LUA_ERRMEM) lua_error(L);   /* a memory error goes on up, never passes for bad input */
        lua_pushnil(L);
        lua_insert(L, -2);
        return 0;
    }
    return 1;
}
