/* chunk.c - the chunk lines of a chunked body checked against RFC 9112 7.1 and their
 * extensions cut out of what llhttp sees (see chunk.h):
 *
 *   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk     = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-name = token
 *   chunk-ext-val  = token / quoted-string
 *
 * One state per place in a line; the states of the extensions are those whose bytes llhttp
 * is not given (EXT_FIRST to EXT_LAST). */
#include "chunk.h"

#include <stdbool.h>
#include <string.h>

enum crl__chunk_state {
    OFF = CRL__CHUNK_OFF,
    SIZE0,               /* a chunk line starts: its first hex digit */
    SIZE,                /* in the chunk-size */
    EXT_FIRST,           /* the extensions' states, from here to EXT_LAST */
    WS_SEMI = EXT_FIRST, /* BWS after the size or a value: ';' must follow */
    WS_NAME,             /* after ';': BWS, then a name */
    NAME,                /* in a name */
    WS_EQ,               /* BWS after a name: ';' or '=' must follow */
    WS_VALUE,            /* after '=': BWS, then a value */
    TOKEN,               /* in a token value */
    QUOTED,              /* in a quoted-string value */
    QPAIR,               /* after a backslash in it */
    CLOSED,              /* after its closing quote */
    EXT_LAST = CLOSED,
    LF,      /* after the line's CR */
    DATA,    /* in the chunk data (left bytes to come) */
    DATA_CR, /* the CRLF after it */
    DATA_LF,
    BAD,
};

static bool is_ext(int s) { return s >= EXT_FIRST && s <= EXT_LAST; }

static bool is_ws(unsigned char ch) { return ch == ' ' || ch == '\t'; }

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* RFC 9110 5.6.2 */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* RFC 9110 5.6.4: qdtext, and what may follow a backslash. */
static bool is_qdtext(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f && ch != '"' && ch != '\\');
}

static bool is_quotable(unsigned char ch) { return ch == '\t' || (ch >= 0x20 && ch != 0x7f); }

/* What may follow a name: another extension, a value, the line's end. */
static int after_name(unsigned char ch)
{
    return ch == ';' ? WS_NAME : ch == '=' ? WS_VALUE : is_ws(ch) ? WS_EQ : ch == '\r' ? LF : BAD;
}

/* What may follow a value (or the size): another extension, the line's end. */
static int after_value(unsigned char ch)
{
    return ch == ';' ? WS_NAME : is_ws(ch) ? WS_SEMI : ch == '\r' ? LF : BAD;
}

/* The state after byte ch of a chunk line (k->state is not OFF or DATA). */
static int next_state(const struct crl__chunk *k, unsigned char ch)
{
    if (k->line >= CRL__CHUNK_LINE_MAX && k->state < DATA)
        return BAD;
    switch (k->state) {
    case SIZE0: return hex_value(ch) >= 0 ? SIZE : BAD;
    case SIZE:
        if (hex_value(ch) >= 0)
            return k->left >> 60 ? BAD : SIZE; /* (it would overflow 64 bits) */
        return after_value(ch);
    case WS_SEMI: return is_ws(ch) ? WS_SEMI : ch == ';' ? WS_NAME : BAD;
    case WS_NAME: return is_ws(ch) ? WS_NAME : is_tchar(ch) ? NAME : BAD;
    case NAME: return is_tchar(ch) ? NAME : after_name(ch);
    case WS_EQ: return is_ws(ch) ? WS_EQ : ch == '\r' ? BAD : after_name(ch);
    case WS_VALUE: return is_ws(ch) ? WS_VALUE : is_tchar(ch) ? TOKEN : ch == '"' ? QUOTED : BAD;
    case TOKEN: return is_tchar(ch) ? TOKEN : after_value(ch);
    case QUOTED: return ch == '"' ? CLOSED : ch == '\\' ? QPAIR : is_qdtext(ch) ? QUOTED : BAD;
    case QPAIR: return is_quotable(ch) ? QUOTED : BAD;
    case CLOSED: return after_value(ch);
    case LF: return ch != '\n' ? BAD : k->left ? DATA : OFF; /* size 0: the last chunk */
    case DATA_CR: return ch == '\r' ? DATA_LF : BAD;
    case DATA_LF: return ch == '\n' ? SIZE0 : BAD;
    default: return BAD;
    }
}

/* Take byte ch, which leads to state s. */
static void take(struct crl__chunk *k, int s, unsigned char ch)
{
    if (s == SIZE)
        k->left = k->left << 4 | (uint64_t)hex_value(ch);
    k->line = s == DATA || s == SIZE0 ? 0 : (uint16_t)(k->line + 1);
    k->state = (uint8_t)s;
}

/* Bytes of chunk data at the start of in[0..n): they pass unseen. */
static size_t data_bytes(struct crl__chunk *k, size_t n)
{
    size_t m = k->left < n ? (size_t)k->left : n;
    k->left -= m;
    if (k->left == 0)
        k->state = DATA_CR;
    return m;
}

/* The hex digits of a chunk-size at the start of in[0..n), taken at once (most chunk lines
 * are a size alone): how many, or SIZE_MAX when the size would not fit 64 bits or the line
 * would be too long. */
static size_t size_digits(struct crl__chunk *k, const unsigned char *in, size_t n)
{
    uint64_t v = k->left;
    size_t m = 0;
    for (int d; m < n && (d = hex_value(in[m])) >= 0; m++) {
        if (v >> 60)
            return SIZE_MAX;
        v = v << 4 | (uint64_t)d;
    }
    if (k->line + m > CRL__CHUNK_LINE_MAX)
        return SIZE_MAX;
    if (m) {
        k->left = v;
        k->line = (uint16_t)(k->line + m);
        k->state = SIZE;
    }
    return m;
}

/* Whether in[0..n) starts with the CRLF after a chunk's size or its data: then it is taken
 * (the common chunk line and chunk end, without a look at each byte's state). */
static bool crlf(struct crl__chunk *k, const unsigned char *in, size_t n)
{
    if (n < 2 || in[0] != '\r' || in[1] != '\n')
        return false;
    if (k->state == DATA_CR)
        k->state = SIZE0;
    else if (k->state == SIZE && k->line + 2 <= CRL__CHUNK_LINE_MAX)
        k->state = k->left ? DATA : OFF;
    else
        return false;
    k->line = 0;
    return true;
}

void crl__chunk_start(struct crl__chunk *k) { *k = (struct crl__chunk){.state = SIZE0}; }

int crl__chunk_scan(struct crl__chunk *k, const char *in, size_t n, size_t *pass, size_t *skip)
{
    const unsigned char *u = (const unsigned char *)in;
    size_t i = 0, j;
    while (i < n && k->state != OFF) { /* bytes for llhttp, up to an extension */
        if (k->state == DATA) {
            i += data_bytes(k, n - i);
            continue;
        }
        if (k->state == SIZE0 || k->state == SIZE) {
            size_t m = size_digits(k, u + i, n - i);
            if (m == SIZE_MAX)
                return -1;
            if ((i += m) == n)
                break;
        }
        if (crlf(k, u + i, n - i)) {
            i += 2;
            continue;
        }
        int s = next_state(k, u[i]);
        if (s == BAD)
            return -1;
        if (is_ext(s))
            break;
        take(k, s, u[i++]);
    }
    if (k->state == OFF)
        i = n;
    for (j = i; j < n; j++) { /* an extension's bytes, up to the line's CR */
        int s = next_state(k, u[j]);
        if (s == BAD)
            return -1;
        if (!is_ext(s))
            break;
        take(k, s, u[j]);
    }
    *pass = i;
    *skip = j - i;
    return 0;
}
