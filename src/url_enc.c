/* URL building into a Lua buffer: per-segment percent-encoding, OData key literals, query and
 * form values. libcurl removes dot segments and sends what it is given, so every id is checked
 * and encoded here before it reaches a URL. */
#include <string.h>

#include "url_enc.h"

static const char HEX[] = "0123456789ABCDEF";

static int unreserved(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

static void add_pct(luaL_Buffer *b, unsigned char ch) {
    luaL_addchar(b, '%');
    luaL_addchar(b, HEX[ch >> 4]);
    luaL_addchar(b, HEX[ch & 15]);
}

/* Rejects what can never be a valid id: CR, LF, NUL (and other C0 controls), empty. */
static const char *check_id(const char *s, size_t n) {
    size_t i;
    if (n == 0) return "empty id";
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0) return "id contains NUL";
        if (ch == '\r' || ch == '\n') return "id contains CR or LF";
        if (ch < 0x20 || ch == 0x7f) return "id contains a control character";
    }
    return NULL;
}

const char *vl_url_add_segment(luaL_Buffer *b, const char *s, size_t n) {
    const char *err = check_id(s, n);
    size_t i;
    if (err) return err;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return "id must not be '.' or '..'";
    luaL_addchar(b, '/');
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        /* ':' and '@' are pchars: real activity ids contain ':' */
        if (unreserved(ch) || ch == ':' || ch == '@') luaL_addchar(b, (char)ch);
        else add_pct(b, ch);
    }
    return NULL;
}

/* ABNF: stringLiteral = SQUOTE *( SQUOTE-in-string / pchar-no-SQUOTE ) SQUOTE, where
 * SQUOTE is "'" or "%27": a percent-encoded quote is still a quote, so quotes are doubled
 * first and everything outside unreserved is then percent-encoded. */
const char *vl_url_add_key(luaL_Buffer *b, const char *name, const char *s, size_t n) {
    const char *err = check_id(s, n);
    size_t i;
    if (err) return err;
    luaL_addchar(b, '(');
    luaL_addstring(b, name);
    luaL_addstring(b, "='");
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\'') { add_pct(b, ch); add_pct(b, ch); }
        else if (unreserved(ch) || ch == ':' || ch == '@') luaL_addchar(b, (char)ch);
        else add_pct(b, ch);
    }
    luaL_addstring(b, "')");
    return NULL;
}

void vl_url_add_query(luaL_Buffer *b, const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (unreserved(ch) || ch == ',' || ch == '$' || ch == '@' || ch == ':') luaL_addchar(b, (char)ch);
        else add_pct(b, ch);
    }
}

void vl_url_add_form(luaL_Buffer *b, const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (unreserved(ch)) luaL_addchar(b, (char)ch);
        else add_pct(b, ch);
    }
}
