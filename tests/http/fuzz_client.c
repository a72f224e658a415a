/* fuzz_client.c - libFuzzer target: arbitrary bytes as a server's answer to the HTTP client.
 * The bytes go, cut into records, into one end of a SOCK_SEQPACKET socketpair (each of the
 * client's reads returns at most one record, so the parser sees every split) before the
 * request is made; that end is then shut for writing. The client, handed the other end as
 * its connection, sends GET or HEAD and reads the response with its own code. The oracle:
 * no crash, sanitizer report or leak, and either a consistent response or a documented
 * error. Build: -Dfuzz=true with clang (tests/http/meson.build); run: scripts/test.sh fuzz. */
#define _GNU_SOURCE
#include "http/client.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_PIECES = 64 };

static const struct crl_http_client_opts limits = {
    .max_head_bytes = 400, .max_headers = 8, .max_body = 3000};

struct input {
    const uint8_t *data;
    size_t size;
    size_t piece; /* bytes per record (the last record takes what is left) */
    bool head;    /* the request is HEAD, else GET */
};

/* A broken oracle: say which, with the value that broke it, for the crash report. */
static _Noreturn void broken(const char *what, long value)
{
    fprintf(stderr, "fuzz_client: %s (%ld)\n", what, value);
    __builtin_trap();
}

/* Write the input as records into fd, then end the stream. */
static void script(int fd, const struct input *in)
{
    size_t off = 0;
    for (int n = 0; off < in->size && n < MAX_PIECES; n++) {
        size_t len = n == MAX_PIECES - 1 || in->size - off < in->piece ? in->size - off : in->piece;
        if (send(fd, in->data + off, len, MSG_DONTWAIT) != (ssize_t)len)
            break; /* too big for the socket's buffer: the answer is cut short */
        off += len;
    }
    shutdown(fd, SHUT_WR);
}

static bool is_token_char(char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* What a successful response must look like, whatever the bytes were. */
static void check_response(const struct crl_http_response *r, bool head)
{
    if (r->status < 200 || r->status > 999 || (r->version != 10 && r->version != 11))
        __builtin_trap();
    if (r->header_count > limits.max_headers || r->body_len > limits.max_body ||
        r->body[r->body_len] != 0 || (head && r->body_len))
        __builtin_trap();
    if ((r->status == 204 || r->status == 304) && r->body_len)
        __builtin_trap();
    for (size_t i = 0; i < r->header_count; i++) {
        const char *name = r->headers[i].name;
        if (!name[0] || !r->headers[i].value)
            __builtin_trap();
        for (; *name; name++)
            if (!is_token_char(*name))
                __builtin_trap();
        if (crl_http_response_header(r, r->headers[i].name) == NULL)
            __builtin_trap();
    }
}

static void exchange(const struct input *in)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        __builtin_trap();
    script(sv[1], in);
    struct crl_http_client *c;
    if (crl_http_client_open(&c, "127.0.0.1:1", &limits) != 0) /* never dialled */
        __builtin_trap();
    crl__http_client_adopt(c, sv[0]);
    struct crl_http_request req = {
        .method = in->head ? "HEAD" : "GET", .target = "/", .deadline_ns = CRL_NO_DEADLINE};
    struct crl_http_response r;
    int rc = crl_http_client_request(c, &req, &r);
    if (rc == 0)
        check_response(&r, in->head);
    else if (rc != -EPROTO && rc != -EMSGSIZE && rc != -ECONNRESET && rc != -ENOMEM)
        broken("crl_http_client_request returned an undocumented error", rc);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    if (fcntl(sv[0], F_GETFD) != -1) /* the client closed its connection */
        broken("the client left its connection open", sv[0]);
    close(sv[1]);
}

/* One runtime serves every input: starting one costs milliseconds (fresh rings and stacks),
 * an exchange microseconds. It runs on a thread of its own; each input is handed over
 * through an eventfd, and its end awaited on a semaphore. */
static struct {
    const struct input *in;
    int kick;
    sem_t done;
} job;

static int serve_inputs(void *arg)
{
    (void)arg;
    for (;;) {
        uint64_t n;
        ssize_t got = crl_read(job.kick, &n, sizeof n);
        if (got != sizeof n)
            broken("reading the next input's kick", (long)got);
        exchange(job.in);
        sem_post(&job.done);
    }
}

static void *runtime_thread(void *arg)
{
    (void)arg;
    crl_run(&(struct crl_config){.cores = 1}, serve_inputs, NULL);
    __builtin_trap(); /* serve_inputs never returns */
}

static void start_runtime(void)
{
    pthread_t t;
    job.kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (job.kick < 0 || sem_init(&job.done, 0, 0) != 0 ||
        pthread_create(&t, NULL, runtime_thread, NULL) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (size < 1)
        return 0;
    pthread_once(&once, start_runtime);
    /* The first byte sets the record size and, in its top bit, the method. */
    struct input in = {data + 1, size - 1, (size_t)(data[0] & 0x7f) + 1, data[0] & 0x80};
    uint64_t one = 1;
    job.in = &in;
    if (write(job.kick, &one, sizeof one) != sizeof one)
        __builtin_trap();
    while (sem_wait(&job.done) != 0)
        ;
    return 0;
}
