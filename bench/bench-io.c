/* bench-io.c - I/O micro-benchmarks on the backend CORRAL_BACKEND selects, printed as
 * `name value unit` lines (the format of ../shared/peers/micro). bench/io.sh runs it on both
 * backends beside the peers' figures and prints the ratios.
 *
 *   bench-io [READ_FILE]   READ_FILE: the peers' 256 MiB file for the random-read rows
 */
#define _GNU_SOURCE
#include "corral.h"

#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

enum { REPS = 5 };

static const char *read_file;
static const char *backend;

/* ---- No-ops in batches of 16: 16 tasks each waiting on one op at a time ------------------ */

struct nop_run {
    long per_task;
};

static int nop_task(void *arg)
{
    long n = ((struct nop_run *)arg)->per_task;
    for (long i = 0; i < n; i++)
        crl_io_nop();
    return 0;
}

static int spawn_nop_tasks(struct crl_scope *s, void *arg)
{
    for (int i = 0; i < 16; i++)
        crl_spawn(s, nop_task, arg);
    return 0;
}

static double nop_batch16_once(long total)
{
    struct nop_run r = {total / 16};
    int64_t t0 = crl_now_ns();
    crl_scope_run(spawn_nop_tasks, &r);
    return (double)(crl_now_ns() - t0) / (double)(r.per_task * 16);
}

/* ---- 4 KiB random reads at queue depth 1 and 32 ----------------------------------------- */

struct reads {
    int fd;
    long blocks;
    int64_t until_ns;
    long done;
    uint64_t seed;
};

static int read_task(void *arg)
{
    struct reads *r = arg;
    void *buf = aligned_alloc(4096, 4096);
    uint64_t x = r->seed++ * 0x9e3779b97f4a7c15ULL + 1;
    while (crl_now_ns() < r->until_ns) {
        for (int i = 0; i < 64; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (crl_pread(r->fd, buf, 4096, (int64_t)(x % (uint64_t)r->blocks) * 4096) != 4096) {
                free(buf);
                return -EIO;
            }
            r->done++;
        }
    }
    free(buf);
    return 0;
}

struct qd_run {
    struct reads *r;
    int depth;
};

static int spawn_readers(struct crl_scope *s, void *arg)
{
    struct qd_run *q = arg;
    for (int i = 0; i < q->depth; i++)
        crl_spawn(s, read_task, q->r);
    return 0;
}

static void randread(int depth)
{
    int fd = crl_open(read_file, O_RDONLY | O_DIRECT, 0);
    const char *mode = "direct";
    if (fd == -EINVAL) {
        fd = crl_open(read_file, O_RDONLY, 0);
        mode = "buffered";
    }
    if (fd < 0) {
        fprintf(stderr, "bench-io: %s: %s\n", read_file, strerror(-fd));
        return;
    }
    struct stat sb;
    fstat(fd, &sb);
    double iops[REPS];
    for (int rep = 0; rep < REPS; rep++) {
        struct reads r = {fd, sb.st_size / 4096, crl_now_ns() + CRL_SEC_NS, 0, (uint64_t)rep};
        struct qd_run q = {&r, depth};
        int64_t t0 = crl_now_ns();
        crl_scope_run(spawn_readers, &q);
        iops[rep] = (double)r.done / ((double)(crl_now_ns() - t0) / 1e9);
    }
    printf("corral_%s_randread4k_qd%d_%s %.0f IOPS\n", backend, depth, mode,
           bench_median(iops, REPS));
    crl_close(fd);
}

/* ---- TCP ping-pong on loopback ---------------------------------------------------------- */

struct pingpong {
    int lfd;
    char addr[64];
    long rounds;
};

static int pong(void *arg)
{
    struct pingpong *p = arg;
    int fd = crl_accept(p->lfd, NULL, NULL);
    char b;
    crl_tcp_set_nodelay(fd, true);
    while (crl_read(fd, &b, 1) == 1)
        crl_write(fd, &b, 1);
    return crl_close(fd);
}

static int ping(void *arg)
{
    struct pingpong *p = arg;
    int fd = crl_tcp_connect(p->addr, CRL_NO_DEADLINE);
    char b = 'x';
    crl_tcp_set_nodelay(fd, true);
    for (long i = 0; i < p->rounds; i++) {
        crl_write(fd, &b, 1);
        crl_read(fd, &b, 1);
    }
    return crl_close(fd);
}

static int spawn_pingpong(struct crl_scope *s, void *arg)
{
    crl_spawn(s, pong, arg);
    crl_spawn(s, ping, arg);
    return 0;
}

static void tcp_pingpong(void)
{
    struct pingpong p = {.rounds = 20000};
    p.lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    struct sockaddr_storage ss;
    socklen_t len;
    crl_socket_local_addr(p.lfd, &ss, &len);
    snprintf(p.addr, sizeof p.addr, "127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    double us[REPS];
    for (int rep = 0; rep < REPS; rep++) {
        int64_t t0 = crl_now_ns();
        crl_scope_run(spawn_pingpong, &p);
        us[rep] = (double)(crl_now_ns() - t0) / 1e3 / (double)p.rounds;
    }
    printf("corral_%s_tcp_pingpong_rtt %.2f us\n", backend, bench_median(us, REPS));
    crl_close(p.lfd);
}

/* ---- Blocking offload round trip -------------------------------------------------------- */

static int trivial(void *arg)
{
    (void)arg;
    return 0;
}

static void offload_rtt(void)
{
    double us[REPS];
    crl_offload(trivial, NULL); /* start the pool */
    for (int rep = 0; rep < REPS; rep++) {
        long n = 20000;
        int64_t t0 = crl_now_ns();
        for (long i = 0; i < n; i++)
            crl_offload(trivial, NULL);
        us[rep] = (double)(crl_now_ns() - t0) / 1e3 / (double)n;
    }
    printf("corral_%s_offload_rtt_samecpu %.2f us\n", backend, bench_median(us, REPS));
}

static int bench_main(void *arg)
{
    (void)arg;
    backend = crl_io_backend();
    double v[REPS];
    nop_batch16_once(160000);
    for (int i = 0; i < REPS; i++)
        v[i] = nop_batch16_once(1600000);
    printf("corral_%s_nop_batch16 %.2f ns\n", backend, bench_median(v, REPS));
    fflush(stdout);
    if (read_file) {
        randread(1);
        randread(32);
    }
    tcp_pingpong();
    offload_rtt();
    return 0;
}

int main(int argc, char **argv)
{
    read_file = argc > 1 ? argv[1] : NULL;
    cpu_set_t cpu0; /* like the peers: the core and its pool threads on CPU 0 */
    CPU_ZERO(&cpu0);
    CPU_SET(0, &cpu0);
    sched_setaffinity(0, sizeof cpu0, &cpu0);
    return crl_run(NULL, bench_main, NULL) < 0;
}
