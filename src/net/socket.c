/* socket.c - socket conveniences over the I/O calls: "HOST:PORT" addresses (numeric here, names
 * through resolve.c), TCP listen and connect (with a deadline, over each address of a name in
 * turn), UDP bind, Unix stream sockets, socket options. */
#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int crl_parse_addr(const char *host_port, struct sockaddr_storage *addr, socklen_t *len)
{
    char host[64];
    const char *colon;
    if (!host_port)
        return -EINVAL;
    if (host_port[0] == '[') { /* [v6]:port */
        const char *end = strchr(host_port, ']');
        if (!end || end[1] != ':' || (size_t)(end - host_port - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, host_port + 1, (size_t)(end - host_port - 1));
        host[end - host_port - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(host_port, ':');
        if (!colon || (size_t)(colon - host_port) >= sizeof host)
            return -EINVAL;
        memcpy(host, host_port, (size_t)(colon - host_port));
        host[colon - host_port] = 0;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == 0 || *end || port < 0 || port > 65535)
        return -EINVAL;
    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else {
        return -EINVAL;
    }
    return 0;
}

int crl_format_addr(const struct sockaddr *addr, socklen_t len, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    bool v6 = addr && addr->sa_family == AF_INET6;
    if (!addr || !buf || size == 0)
        return -EINVAL;
    buf[0] = 0;
    if (v6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    } else if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else {
        return v6 || addr->sa_family == AF_INET ? -EINVAL : -EAFNOSUPPORT;
    }
    int n =
        v6 ? snprintf(buf, size, "[%s]:%u", host, port) : snprintf(buf, size, "%s:%u", host, port);
    if ((size_t)n >= size) {
        buf[0] = 0;
        return -ENOSPC;
    }
    return n;
}

int crl_socket_local_name(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = crl_socket_local_addr(fd, &ss, &len);
    return rc ? rc : crl_format_addr((const struct sockaddr *)&ss, len, buf, size);
}

static int new_socket(int family, int type)
{
    int fd = crl__sys()->socket(family, type);
    if (fd < 0)
        return fd;
    struct crl__core *c = crl__core();
    if (c && c->io->ops && c->io->ops->forget)
        c->io->ops->forget(c, fd); /* the number may be one closed behind the backend's back */
    return fd;
}

static int set_int(int fd, int level, int name, int value)
{
    return crl__sys()->setsockopt(fd, level, name, &value, sizeof value);
}

static int fail_close(int fd, int rc)
{
    crl_close(fd);
    return rc;
}

/* A socket of type bound to "HOST:PORT" (a name: its first address), with SO_REUSEADDR /
 * SO_REUSEPORT if asked. */
static int bound_socket(const char *host_port, int type, bool reuseaddr, bool reuseport)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int rc = crl_resolve(host_port, &addr, &len, 1, CRL_NO_DEADLINE);
    if (rc < 0)
        return rc;
    int fd = new_socket(addr.ss_family, type);
    if (fd < 0)
        return fd;
    if (reuseaddr && (rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)))
        return fail_close(fd, rc);
    if (reuseport && (rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
        return fail_close(fd, rc);
    if ((rc = crl__sys()->bind(fd, (struct sockaddr *)&addr, len)))
        return fail_close(fd, rc);
    return fd;
}

int crl_tcp_listen(const char *host_port, const struct crl_listen_opts *opts)
{
    int fd = bound_socket(host_port, SOCK_STREAM, true, opts && opts->reuseport);
    if (fd < 0)
        return fd;
    int rc = crl__sys()->listen(fd, opts && opts->backlog > 0 ? opts->backlog : 1024);
    if (rc)
        return fail_close(fd, rc);
    return fd;
}

enum { MAX_CONNECT_ADDRS = 16 };

struct connect_call {
    const char *host_port;
    int fd; /* out: the connected socket */
};

/* Connect a new socket to addr: the connected fd, or the error (the socket closed). */
static int connect_one(const struct sockaddr_storage *addr, socklen_t len)
{
    int fd = new_socket(addr->ss_family, SOCK_STREAM);
    if (fd < 0)
        return fd;
    int rc = crl_connect(fd, (const struct sockaddr *)addr, len);
    return rc < 0 ? fail_close(fd, rc) : fd;
}

/* Resolve, then try each address in turn; the last error if none answers. A cancellation
 * ends the tries at once. */
static int connect_fn(void *arg)
{
    struct connect_call *cc = arg;
    struct sockaddr_storage addrs[MAX_CONNECT_ADDRS];
    socklen_t lens[MAX_CONNECT_ADDRS];
    int n = crl_resolve(cc->host_port, addrs, lens, MAX_CONNECT_ADDRS, CRL_NO_DEADLINE);
    int rc = n < 0 ? n : -ECONNREFUSED;
    for (int i = 0; i < n; i++) {
        rc = connect_one(&addrs[i], lens[i]);
        if (rc >= 0) {
            cc->fd = rc;
            return 0;
        }
        if (rc == -ECANCELED || rc == -ETIMEDOUT)
            break;
    }
    return rc;
}

int crl_tcp_connect(const char *host_port, int64_t deadline_ns)
{
    struct connect_call cc = {.host_port = host_port, .fd = -1};
    int rc = deadline_ns == CRL_NO_DEADLINE ? connect_fn(&cc)
                                            : crl_with_deadline(deadline_ns, connect_fn, &cc);
    if (rc < 0) {
        if (cc.fd >= 0) /* connected just as the deadline fired */
            crl_close(cc.fd);
        return rc;
    }
    return cc.fd;
}

int crl_udp_bind(const char *host_port)
{
    return bound_socket(host_port, SOCK_DGRAM, false, false);
}

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    if (!path || strlen(path) >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    return 0;
}

/* A Unix stream socket and the address of path. */
static int unix_socket(const char *path, struct sockaddr_un *sun)
{
    int rc = unix_addr(path, sun);
    return rc ? rc : new_socket(AF_UNIX, SOCK_STREAM);
}

int crl_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sun;
    int fd = unix_socket(path, &sun);
    if (fd < 0)
        return fd;
    const struct crl__sys_ops *sys = crl__sys();
    int rc = sys->bind(fd, (struct sockaddr *)&sun, sizeof sun);
    if (rc || (rc = sys->listen(fd, backlog > 0 ? backlog : 128)))
        return fail_close(fd, rc);
    return fd;
}

int crl_unix_connect(const char *path)
{
    struct sockaddr_un sun;
    int fd = unix_socket(path, &sun);
    if (fd < 0)
        return fd;
    int rc = crl_connect(fd, (struct sockaddr *)&sun, sizeof sun);
    return rc < 0 ? fail_close(fd, rc) : fd;
}

int crl_tcp_set_nodelay(int fd, bool on) { return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on); }

int crl_socket_set_keepalive(int fd, bool on) { return set_int(fd, SOL_SOCKET, SO_KEEPALIVE, on); }

int crl_socket_local_addr(int fd, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof *addr;
    return crl__sys()->getsockname(fd, (struct sockaddr *)addr, len);
}
