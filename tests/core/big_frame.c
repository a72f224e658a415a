/* big_frame.c - a function with a 224 KB frame, built WITHOUT -fstack-clash-protection
 * (tests/meson.build), as user code often is (Debian's gcc does not enable it by default):
 * the frame is allocated with one move of the stack pointer and first touched at its bottom,
 * so on a 64 KiB stack that touch lands 160 KB below the stack's end. */
#include "big_frame.h"

#include <string.h>

int test_big_frame(int seed)
{
    volatile char frame[224 * 1024];
    frame[0] = (char)seed; /* the lowest address first: no probe touched the pages above */
    memset((char *)frame + 1, seed, sizeof frame - 1);
    return frame[0] + frame[sizeof frame - 1];
}
