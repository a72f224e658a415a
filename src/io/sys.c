/* sys.c - the kernel's synchronous socket calls, as io_uring and epoll give them (the
 * crl__sys_ops of io.h). A simulated backend gives its own: every fd a task sees is then the
 * backend's, and none of these reaches the kernel. */
#include "io.h"

#include <unistd.h>

static int neg(int rc) { return rc < 0 ? -errno : rc; }

static int k_socket(int family, int type)
{
    return neg(socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

static int k_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    return neg(setsockopt(fd, level, name, val, len));
}

static int k_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return neg(bind(fd, addr, len));
}

static int k_listen(int fd, int backlog) { return neg(listen(fd, backlog)); }

static int k_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    return neg(getsockname(fd, addr, len));
}

static int k_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    return neg(getpeername(fd, addr, len));
}

static int k_shutdown(int fd, int how) { return neg(shutdown(fd, how)); }

static int k_recv(int fd, void *buf, size_t len, int flags)
{
    return neg((int)recv(fd, buf, len, flags | MSG_DONTWAIT));
}

static int k_sock_type(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 ? type : -1;
}

static int k_close(int fd) { return neg(close(fd)); }

const struct crl__sys_ops crl__kernel_sys = {
    .socket = k_socket,
    .setsockopt = k_setsockopt,
    .bind = k_bind,
    .listen = k_listen,
    .getsockname = k_getsockname,
    .getpeername = k_getpeername,
    .shutdown = k_shutdown,
    .recv = k_recv,
    .sock_type = k_sock_type,
    .close = k_close,
};

const struct crl__sys_ops *crl__sys(void)
{
    struct crl__core *c = crl__core();
    return c && c->io->ops ? c->io->ops->sys : &crl__kernel_sys;
}
