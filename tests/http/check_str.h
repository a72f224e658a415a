/* check_str.h - string checks shared by the HTTP tests. */
#ifndef CRL_TESTS_HTTP_CHECK_STR_H
#define CRL_TESTS_HTTP_CHECK_STR_H

#include "../test.h"

#include <string.h>

/* Fail unless needle occurs in hay. */
#define CHECK_STR(hay, needle)                                                                     \
    do {                                                                                           \
        if (!strstr((hay), (needle)))                                                              \
            test_fail(__FILE__, __LINE__, "\"%s\" not found in:\n%s", (needle), (hay));            \
    } while (0)

/* Fail if needle occurs in hay. */
#define CHECK_NO_STR(hay, needle)                                                                  \
    do {                                                                                           \
        if (strstr((hay), (needle)))                                                               \
            test_fail(__FILE__, __LINE__, "\"%s\" unexpectedly in:\n%s", (needle), (hay));         \
    } while (0)

/* How many times needle occurs in hay, without overlaps. */
static inline int count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#endif
