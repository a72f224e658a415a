/* date.c - the Date header's value (RFC 9110 IMF-fixdate), formatted at most once a second
 * per core: every response carries it, and formatting a date costs more than the rest of a
 * small response head. The cache is the core's (struct crl__http_core), or a thread's own
 * outside a runtime (the fuzzer).
 *
 * The cache is checked against the monotonic time the response head reads anyway (for its
 * write deadline), so that a response reads one clock, not two: the wall clock is read only
 * when the second it formatted is over. A step of the wall clock shows within a second. */
#include "http.h"
#include "../core/clock.h"

#include <time.h>

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

const char *crl__http_date(struct crl__http_date_cache *cache, int64_t now_ns)
{
    if (now_ns < cache->until_ns)
        return cache->text;
    /* The coarse clocks move together, at the tick: read after now_ns, the wall clock is as
     * new or newer, so the end of its second lands at or before the real one (at worst a
     * refresh comes a tick early and formats the same second again). */
    struct timespec ts = crl__clock_wall_coarse();
    format(cache->text, ts.tv_sec);
    cache->until_ns = now_ns + (CRL_SEC_NS - ts.tv_nsec);
    return cache->text;
}
