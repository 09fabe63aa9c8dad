/* Hooks: name lookups run on libuv's thread pool while the green thread
 * parks (nsswitch, /etc/hosts and DNS exactly as glibc does them: it is
 * glibc's own code that runs, on another thread). A lone green thread makes
 * the call itself. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "offload.h"
#include "gate.h"
#include "real.h"
#include "sched.h"

REAL_DECL(int, getaddrinfo, (const char *, const char *, const struct addrinfo *, struct addrinfo **));
REAL_DECL(int, getnameinfo, (const struct sockaddr *, socklen_t, char *, socklen_t, char *, socklen_t, int));
REAL_DECL(struct hostent *, gethostbyname, (const char *));
REAL_DECL(struct hostent *, gethostbyname2, (const char *, int));
REAL_DECL(struct hostent *, gethostbyaddr, (const void *, socklen_t, int));
REAL_DECL(int, gethostbyname_r, (const char *, struct hostent *, char *, size_t, struct hostent **, int *));
REAL_DECL(int, gethostbyname2_r, (const char *, int, struct hostent *, char *, size_t, struct hostent **, int *));
REAL_DECL(int, gethostbyaddr_r, (const void *, socklen_t, int, struct hostent *, char *, size_t, struct hostent **, int *));

/* One lookup's arguments and results, carried to the pool thread. */
struct lookup {
    int kind;
    const char *name, *service;
    const struct addrinfo *hints;
    struct addrinfo **res;
    const struct sockaddr *sa;
    socklen_t salen, hostlen, servlen;
    char *host, *serv;
    int flags, af, rc, herr;
    const void *addr;
    struct hostent *ret, *hbuf, **result;
    char *buf;
    size_t buflen;
    int *h_errnop;
};

enum { GAI, GNI, GHBN, GHBN2, GHBA, GHBN_R, GHBN2_R, GHBA_R };

static void lookup_run(void *p)
{
    struct lookup *l = p;
    switch (l->kind) {
    case GAI: l->rc = REAL(getaddrinfo)(l->name, l->service, l->hints, l->res); break;
    case GNI:
        l->rc = REAL(getnameinfo)(l->sa, l->salen, l->host, l->hostlen, l->serv, l->servlen, l->flags);
        break;
    case GHBN: l->ret = REAL(gethostbyname)(l->name); l->herr = h_errno; break;
    case GHBN2: l->ret = REAL(gethostbyname2)(l->name, l->af); l->herr = h_errno; break;
    case GHBA: l->ret = REAL(gethostbyaddr)(l->addr, l->salen, l->af); l->herr = h_errno; break;
    case GHBN_R:
        l->rc = REAL(gethostbyname_r)(l->name, l->hbuf, l->buf, l->buflen, l->result, &l->herr);
        break;
    case GHBN2_R:
        l->rc = REAL(gethostbyname2_r)(l->name, l->af, l->hbuf, l->buf, l->buflen, l->result, &l->herr);
        break;
    case GHBA_R:
        l->rc = REAL(gethostbyaddr_r)(l->addr, l->salen, l->af, l->hbuf, l->buf, l->buflen, l->result,
                                      &l->herr);
        break;
    }
}

/* Numeric hosts and ports need no lookup: nothing can block. */
static bool numeric(const char *name, const char *service)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (name && inet_pton(AF_INET, name, buf) != 1 && inet_pton(AF_INET6, name, buf) != 1)
        return false;
    if (service) {
        char *end;
        strtoul(service, &end, 10);
        if (*service == '\0' || *end != '\0')
            return false;
    }
    return true;
}

/* Run the lookup on the pool; the park counts and shows as a DNS wait. */
static void dns_offload(struct sched *s, struct lookup *l)
{
    sched_wait_hint(s, WAIT_DNS);
    offload_run(s, lookup_run, l);
    sched_wait_hint(s, WAIT_OTHER);
}

HOOK int getaddrinfo(const char *name, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s || numeric(name, service))
        return REAL(getaddrinfo)(name, service, hints, res);
    struct lookup l = { .kind = GAI, .name = name, .service = service, .hints = hints, .res = res };
    dns_offload(s, &l);
    return l.rc;
}

HOOK int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
                     char *serv, socklen_t servlen, int flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
    struct lookup l = { .kind = GNI, .sa = sa, .salen = salen, .host = host, .hostlen = hostlen,
                        .serv = serv, .servlen = servlen, .flags = flags };
    dns_offload(s, &l);
    return l.rc;
}

/* The non-reentrant calls return glibc's static buffer, as natively (where
 * concurrent callers share it too); h_errno is per kernel thread, so the
 * pool thread's value is copied back. */
HOOK struct hostent *gethostbyname(const char *name)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(gethostbyname)(name);
    struct lookup l = { .kind = GHBN, .name = name };
    dns_offload(s, &l);
    h_errno = l.herr;
    return l.ret;
}

HOOK struct hostent *gethostbyname2(const char *name, int af)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(gethostbyname2)(name, af);
    struct lookup l = { .kind = GHBN2, .name = name, .af = af };
    dns_offload(s, &l);
    h_errno = l.herr;
    return l.ret;
}

HOOK struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(gethostbyaddr)(addr, len, type);
    struct lookup l = { .kind = GHBA, .addr = addr, .salen = len, .af = type };
    dns_offload(s, &l);
    h_errno = l.herr;
    return l.ret;
}

HOOK int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                         struct hostent **result, int *h_errnop)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
    struct lookup l = { .kind = GHBN_R, .name = name, .hbuf = ret, .buf = buf, .buflen = buflen,
                        .result = result };
    dns_offload(s, &l);
    *h_errnop = l.herr;
    return l.rc;
}

HOOK int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
                          struct hostent **result, int *h_errnop)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
    struct lookup l = { .kind = GHBN2_R, .name = name, .af = af, .hbuf = ret, .buf = buf,
                        .buflen = buflen, .result = result };
    dns_offload(s, &l);
    *h_errnop = l.herr;
    return l.rc;
}

HOOK int gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret, char *buf,
                         size_t buflen, struct hostent **result, int *h_errnop)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
    struct lookup l = { .kind = GHBA_R, .addr = addr, .salen = len, .af = type, .hbuf = ret,
                        .buf = buf, .buflen = buflen, .result = result };
    dns_offload(s, &l);
    *h_errnop = l.herr;
    return l.rc;
}
