/* uring-features.c - does an io_uring feature pay for corral? Raw liburing, no corral: a
 * 64-byte message bounced over one loopback TCP connection (send on one end, recv on the
 * other, and back), one SQE at a time, in three variants:
 *   plain      fds as they are, the caller's buffer      (what corral's backend does)
 *   fixed      registered files (IOSQE_FIXED_FILE)       (saves the fd lookup per op)
 *   bufring    recv from a provided-buffer ring          (no buffer tied up per waiting recv)
 * Prints `name value unit` lines, medians of 7 repetitions, pinned to CPU 0.
 *   uring-features
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdbool.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MSG = 64, ROUNDS = 50000, REPS = 7, BUFS = 64, BGID = 7 };

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &len);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    connect(fds[0], (struct sockaddr *)&a, sizeof a);
    fds[1] = accept(l, NULL, NULL);
    close(l);
    int one = 1;
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

enum variant { PLAIN, FIXED, BUFRING };

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;

static int wait_one(void)
{
    struct io_uring_cqe *cqe;
    io_uring_submit_and_wait(&ring, 1);
    io_uring_wait_cqe(&ring, &cqe);
    int res = cqe->res;
    if (br && (cqe->flags & IORING_CQE_F_BUFFER)) { /* give the buffer back to the ring */
        unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        io_uring_buf_ring_add(br, bufs + id * MSG, MSG, (unsigned short)id,
                              io_uring_buf_ring_mask(BUFS), 0);
        io_uring_buf_ring_advance(br, 1);
    }
    io_uring_cqe_seen(&ring, cqe);
    return res;
}

static void send_one(enum variant v, int fd, int idx, char *msg)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_send(sqe, v == FIXED ? idx : fd, msg, MSG, 0);
    if (v == FIXED)
        sqe->flags |= IOSQE_FIXED_FILE;
    wait_one();
}

static void recv_one(enum variant v, int fd, int idx, char *buf)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (v == BUFRING) {
        io_uring_prep_recv(sqe, fd, NULL, MSG, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
    } else {
        io_uring_prep_recv(sqe, v == FIXED ? idx : fd, buf, MSG, 0);
        if (v == FIXED)
            sqe->flags |= IOSQE_FIXED_FILE;
    }
    wait_one();
}

static double bounce(enum variant v, int fds[2])
{
    char msg[MSG] = "ping", buf[MSG];
    long long t0 = now_ns();
    for (int i = 0; i < ROUNDS; i++) {
        send_one(v, fds[0], 0, msg);
        recv_one(v, fds[1], 1, buf);
        send_one(v, fds[1], 1, msg);
        recv_one(v, fds[0], 0, buf);
    }
    return (double)(now_ns() - t0) / (ROUNDS * 4.0);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    cpu_set_t cpu0;
    CPU_ZERO(&cpu0);
    CPU_SET(0, &cpu0);
    sched_setaffinity(0, sizeof cpu0, &cpu0);
    int fds[2];
    tcp_pair(fds);
    if (io_uring_queue_init(64, &ring, 0) != 0 || io_uring_register_files(&ring, fds, 2) != 0) {
        fprintf(stderr, "uring-features: ring setup failed\n");
        return 1;
    }
    bufs = malloc(BUFS * MSG);
    struct io_uring_buf_reg reg = {.ring_entries = BUFS, .bgid = BGID};
    void *mem = mmap(NULL, BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    reg.ring_addr = (unsigned long)mem;
    bool have_bufring = io_uring_register_buf_ring(&ring, &reg, 0) == 0;
    const char *names[] = {"uring_tcp_op_plain", "uring_tcp_op_fixed_files",
                           "uring_tcp_op_provided_buffers"};
    for (int v = PLAIN; v <= BUFRING; v++) {
        if (v == BUFRING) {
            if (!have_bufring)
                continue;
            br = mem;
            io_uring_buf_ring_init(br);
            for (int i = 0; i < BUFS; i++)
                io_uring_buf_ring_add(br, bufs + i * MSG, MSG, (unsigned short)i,
                                      io_uring_buf_ring_mask(BUFS), i);
            io_uring_buf_ring_advance(br, BUFS);
        }
        double t[REPS];
        bounce(v, fds); /* warm-up */
        for (int r = 0; r < REPS; r++)
            t[r] = bounce(v, fds);
        qsort(t, REPS, sizeof t[0], cmp);
        printf("%s %.1f ns\n", names[v], t[REPS / 2]);
    }
    return 0;
}
