/* big_frame.h - see big_frame.c. */
#ifndef CRL_TEST_BIG_FRAME_H
#define CRL_TEST_BIG_FRAME_H
int test_big_frame(int seed);
#endif
