/* Socket helpers (src/net/socket.c): numeric "HOST:PORT" addresses, TCP connect and listen
 * options. The I/O calls over these sockets are tested in tests/io. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Addresses parse as numeric IPv4 or bracketed IPv6 with a port; anything else is refused. */
TEST(parse_addr_accepts_numeric_forms_only)
{
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(crl_parse_addr("127.0.0.1:8080", &ss, &len), 0);
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK_EQ(crl_parse_addr("[::1]:80", &ss, &len), 0);
    CHECK_EQ(ss.ss_family, AF_INET6);
    CHECK_EQ(crl_parse_addr("localhost:80", &ss, &len), -EINVAL);
    CHECK_EQ(crl_parse_addr("127.0.0.1", &ss, &len), -EINVAL);
    CHECK_EQ(crl_parse_addr("127.0.0.1:99999", &ss, &len), -EINVAL);
    CHECK_EQ(crl_parse_addr("[::1]80", &ss, &len), -EINVAL);
}

/* A connection to a port nobody listens on is refused. */
TEST(tcp_connect_refused)
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    CHECK_EQ(crl_close(lfd), 0); /* the port is free again */
    CHECK_EQ(crl_tcp_connect(addr, CRL_NO_DEADLINE), -ECONNREFUSED);
}

/* With reuseport two listeners share a port (one per core, later); without, the second is
 * refused. */
TEST(listen_reuseport_shares_a_port)
{
    struct crl_listen_opts rp = {.reuseport = true};
    int a = crl_tcp_listen("127.0.0.1:0", &rp);
    CHECK(a >= 0);
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(crl_socket_local_addr(a, &ss, &len), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    int b = crl_tcp_listen(addr, &rp);
    CHECK(b >= 0);
    CHECK_EQ(crl_tcp_listen(addr, NULL), -EADDRINUSE);
    CHECK_EQ(crl_close(a), 0);
    CHECK_EQ(crl_close(b), 0);
}
