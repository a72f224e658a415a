/* date.c - the Date header's value (RFC 9110 IMF-fixdate), formatted at most once a second
 * per thread: every response carries it, and formatting a date costs more than the rest of
 * a small response head. A __thread cache works inside and outside a runtime (the fuzzer). */
#include "http.h"

#include <time.h>

struct date_cache {
    time_t sec; /* the second formatted in text, or 0 */
    char text[CRL__HTTP_DATE_LEN + 1];
};

static __thread struct date_cache cache;

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT": fixed width, English names whatever the locale. */
static void format(char *p, time_t sec)
{
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    gmtime_r(&sec, &tm);
    for (int i = 0; i < 3; i++) {
        p[i] = days[tm.tm_wday * 3 + i];
        p[8 + i] = months[tm.tm_mon * 3 + i];
    }
    p[3] = ',', p[4] = ' ', p[7] = ' ', p[11] = ' ';
    put2(p + 5, tm.tm_mday);
    int year = tm.tm_year + 1900;
    put2(p + 12, year / 100 % 100);
    put2(p + 14, year % 100);
    p[16] = ' ';
    put2(p + 17, tm.tm_hour);
    p[19] = ':';
    put2(p + 20, tm.tm_min);
    p[22] = ':';
    put2(p + 23, tm.tm_sec);
    p[25] = ' ', p[26] = 'G', p[27] = 'M', p[28] = 'T', p[29] = '\0';
}

const char *crl__http_date(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts); /* the vDSO's cheapest clock: a tick is enough */
    if (ts.tv_sec != cache.sec) {
        format(cache.text, ts.tv_sec);
        cache.sec = ts.tv_sec;
    }
    return cache.text;
}
