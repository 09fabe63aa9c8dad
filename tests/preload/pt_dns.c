/*
 * pt_dns.c - a plain pthread program (not linked with corun) making name
 * lookups, run by tests/integration/dns.sh inside a private mount and
 * network namespace whose /etc/hosts, /etc/nsswitch.conf ("hosts: files
 * dns") and /etc/resolv.conf (a slow test DNS server, dns_server.py) the
 * script provides:
 *
 *   pt_dns each       every lookup function, on /etc/hosts entries and on
 *                     names only the DNS server knows (forward and reverse),
 *                     failures included; prints a transcript ("T ..." lines)
 *                     that the script compares between green, native and
 *                     plain runs, and checks the values it knows;
 *   pt_dns many N     N threads, each resolving h<i>.corun.test at once
 *                     (the server answers after 200 ms); checks every
 *                     answer and that another thread kept running; prints
 *                     "lookups=N ok=K ms=T ticks=C".
 *
 * A second thread (the ticker, 1 ms sleeps) is alive throughout: a lone
 * green thread makes the real call, and the ticks show the loop did not
 * freeze while lookups were under way.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "pt_common.h"

/* ---- transcripts --------------------------------------------------------- */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *addr_str(int af, const void *a, char *buf, size_t len)
{
    if (!inet_ntop(af, a, buf, (socklen_t)len))
        snprintf(buf, len, "?af%d", af);
    return buf;
}

static const char *sa_str(const struct sockaddr *sa, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        snprintf(buf, len, "%s:%u", addr_str(AF_INET, &s->sin_addr, a, sizeof a), ntohs(s->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)sa;
        snprintf(buf, len, "[%s]:%u", addr_str(AF_INET6, &s->sin6_addr, a, sizeof a),
                 ntohs(s->sin6_port));
    } else {
        snprintf(buf, len, "family%d", sa->sa_family);
    }
    return buf;
}

/* "T <what> rc=... <results>" */
static void t_gai(const char *what, int rc, const struct addrinfo *res, char *out, size_t len)
{
    snprintf(out, len, "T %s rc=%d(%s)", what, rc, rc ? gai_strerror(rc) : "ok");
    for (const struct addrinfo *r = res; !rc && r; r = r->ai_next) {
        char sa[128];
        snprintf(out + strlen(out), len - strlen(out), " {%d %d %d %s%s%s}", r->ai_family,
                 r->ai_socktype, r->ai_protocol, sa_str(r->ai_addr, sa, sizeof sa),
                 r->ai_canonname ? " canon=" : "", r->ai_canonname ? r->ai_canonname : "");
    }
}

static void t_hostent(const char *what, const struct hostent *h, int herr, char *out, size_t len)
{
    if (!h) {
        snprintf(out, len, "T %s NULL h_errno=%d", what, herr);
        return;
    }
    snprintf(out, len, "T %s name=%s type=%d len=%d aliases=", what, h->h_name, h->h_addrtype,
             h->h_length);
    for (char **a = h->h_aliases; *a; a++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", *a, a[1] ? "," : "");
    snprintf(out + strlen(out), len - strlen(out), " addrs=");
    for (char **a = h->h_addr_list; *a; a++) {
        char s[INET6_ADDRSTRLEN];
        snprintf(out + strlen(out), len - strlen(out), "%s%s", addr_str(h->h_addrtype, *a, s, sizeof s),
                 a[1] ? "," : "");
    }
}

static void emit(const char *line)
{
    pthread_mutex_lock(&out_lock);
    printf("%s\n", line);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

/* The line must contain `want` (what the private /etc/hosts and the test
 * server make the answer). */
#define EXPECT(line, want) CHECKF(strstr(line, want), "%s\n    expected to contain: %s", line, want)

static struct sockaddr_in sin4(const char *ip, int port)
{
    struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, ip, &s.sin_addr);
    return s;
}

/* ---- each: every function, one at a time ----------------------------------------- */

static void gai(const char *what, const char *name, const char *serv, int family, int flags,
                const char *want)
{
    char line[2048];
    struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM, .ai_flags = flags };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(name, serv, &hints, &res);
    t_gai(what, rc, res, line, sizeof line);
    if (!rc)
        freeaddrinfo(res);
    emit(line);
    EXPECT(line, want);
}

static void gni(const char *what, const struct sockaddr *sa, socklen_t salen, socklen_t hostlen,
                int flags, const char *want)
{
    char line[1024], host[NI_MAXHOST] = "-", serv[NI_MAXSERV] = "-";
    int rc = getnameinfo(sa, salen, host, hostlen, serv, sizeof serv, flags);
    snprintf(line, sizeof line, "T %s rc=%d(%s) host=%s serv=%s", what, rc, rc ? gai_strerror(rc) : "ok",
             rc ? "-" : host, rc ? "-" : serv);
    emit(line);
    EXPECT(line, want);
}

/* The static-buffer calls: their result is copied before anyone else can
 * call them (one thread at a time here). */
static void ghbn(const char *what, const char *name, int af, const char *want)
{
    char line[1024];
    h_errno = 0;
    struct hostent *h = af ? gethostbyname2(name, af) : gethostbyname(name);
    t_hostent(what, h, h_errno, line, sizeof line);
    emit(line);
    EXPECT(line, want);
}

static void ghba(const char *what, const char *ip, int af, const char *want)
{
    char line[1024], a[16];
    inet_pton(af, ip, a);
    h_errno = 0;
    struct hostent *h = gethostbyaddr(a, af == AF_INET ? 4 : 16, af);
    t_hostent(what, h, h_errno, line, sizeof line);
    emit(line);
    EXPECT(line, want);
}

static void ghbn_r(const char *what, const char *name, int af, size_t buflen, const char *want)
{
    char line[1024], *buf = malloc(buflen);
    struct hostent he, *res = (void *)1;
    int herr = 0;
    int rc = af ? gethostbyname2_r(name, af, &he, buf, buflen, &res, &herr)
                : gethostbyname_r(name, &he, buf, buflen, &res, &herr);
    char h[900];
    t_hostent("", res, herr, h, sizeof h);
    snprintf(line, sizeof line, "T %s rc=%d(%s) %s", what, rc, ename(rc), h + 3);
    emit(line);
    EXPECT(line, want);
    free(buf);
}

static void ghba_r(const char *what, const char *ip, int af, size_t buflen, const char *want)
{
    char line[1024], a[16], *buf = malloc(buflen);
    inet_pton(af, ip, a);
    struct hostent he, *res = (void *)1;
    int herr = 0;
    int rc = gethostbyaddr_r(a, af == AF_INET ? 4 : 16, af, &he, buf, buflen, &res, &herr);
    char h[900];
    t_hostent("", res, herr, h, sizeof h);
    snprintf(line, sizeof line, "T %s rc=%d(%s) %s", what, rc, ename(rc), h + 3);
    emit(line);
    EXPECT(line, want);
    free(buf);
}

static void m_each(void)
{
    ticker_start();
    long t0 = atomic_load(&ticks);
    int64_t start = mono_ns();

    /* /etc/hosts (files) */
    gai("gai alpha:80 inet", "alpha", "80", AF_INET, 0, "rc=0(ok) {2 1 6 127.0.1.7:80}");
    gai("gai beta:ssh inet canon", "beta", "ssh", AF_INET, AI_CANONNAME,
        "{2 1 6 127.0.1.8:22 canon=beta.corun.test}");
    gai("gai localhost:http unspec", "localhost", "http", AF_UNSPEC, 0, "127.0.0.1:80");
    gai("gai localhost inet6", "localhost", NULL, AF_INET6, 0, "{10 1 6 [::1]:0}");
    gai("gai alpha bad service", "alpha", "no-such-service", AF_INET, 0, "rc=-8");
    gai("gai numeric", "192.0.2.5", "7", AF_INET, 0, "{2 1 6 192.0.2.5:7}");
    gai("gai numerichost with a name", "alpha", NULL, AF_INET, AI_NUMERICHOST, "rc=-2");
    gai("gai null host passive", NULL, "80", AF_INET, AI_PASSIVE, "{2 1 6 0.0.0.0:80}");
    struct sockaddr_in b = sin4("127.0.1.8", 22);
    gni("gni beta:22", (struct sockaddr *)&b, sizeof b, NI_MAXHOST, NI_NAMEREQD,
        "rc=0(ok) host=beta.corun.test serv=ssh");
    gni("gni beta:22 numeric", (struct sockaddr *)&b, sizeof b, NI_MAXHOST,
        NI_NUMERICHOST | NI_NUMERICSERV, "host=127.0.1.8 serv=22");
    gni("gni beta short buffer", (struct sockaddr *)&b, sizeof b, 4, NI_NAMEREQD, "rc=-12");
    gni("gni bad length", (struct sockaddr *)&b, 3, NI_MAXHOST, 0, "rc=-6");
    ghbn("ghbn beta", "beta", 0, "name=beta.corun.test type=2 len=4 aliases=beta,betty addrs=127.0.1.8");
    ghbn("ghbn2 localhost inet6", "localhost", AF_INET6, "type=10 len=16");
    ghbn("ghbn2 alpha inet", "alpha", AF_INET, "name=alpha.corun.test type=2 len=4 aliases=alpha addrs=127.0.1.7");
    ghba("ghba 127.0.1.7", "127.0.1.7", AF_INET, "name=alpha.corun.test");
    ghba("ghba ::1", "::1", AF_INET6, "name=localhost");
    ghbn_r("ghbn_r alpha", "alpha", 0, 1024, "rc=0(0) name=alpha.corun.test");
    ghbn_r("ghbn_r alpha tiny buffer", "alpha", 0, 8, "rc=34(ERANGE) NULL");
    ghbn_r("ghbn2_r localhost inet", "localhost", AF_INET, 1024, "rc=0(0) name=localhost type=2 len=4");
    ghba_r("ghba_r 127.0.1.8", "127.0.1.8", AF_INET, 1024, "rc=0(0) name=beta.corun.test");
    ghba_r("ghba_r tiny buffer", "127.0.1.8", AF_INET, 8, "rc=34(ERANGE) NULL");

    /* DNS (the test server, 200 ms an answer) */
    gai("gai h5 dns", "h5.corun.test", "80", AF_INET, 0, "rc=0(ok) {2 1 6 10.0.0.5:80}");
    gai("gai six dns inet6", "six.corun.test", NULL, AF_INET6, 0, "{10 1 6 [fd00::7]:0}");
    gai("gai nope dns", "nope.corun.test", NULL, AF_INET, 0, "rc=-2");
    struct sockaddr_in d = sin4("10.0.1.2", 80);
    gni("gni 10.0.1.2 dns", (struct sockaddr *)&d, sizeof d, NI_MAXHOST, NI_NAMEREQD,
        "rc=0(ok) host=h258.corun.test serv=http");
    ghbn("ghbn h300 dns", "h300.corun.test", 0, "name=h300.corun.test type=2 len=4 aliases= addrs=10.0.1.44");
    ghbn("ghbn nope dns", "nope.corun.test", 0, "NULL h_errno=1");
    ghbn("ghbn2 six dns", "six.corun.test", AF_INET6, "addrs=fd00::7");
    ghba("ghba 10.0.0.77 dns", "10.0.0.77", AF_INET, "name=h77.corun.test");
    ghbn_r("ghbn_r h6 dns", "h6.corun.test", 0, 1024, "rc=0(0) name=h6.corun.test type=2 len=4 aliases= addrs=10.0.0.6");
    ghbn_r("ghbn2_r h7 dns", "h7.corun.test", AF_INET, 1024, "addrs=10.0.0.7");
    ghba_r("ghba_r 10.0.0.8 dns", "10.0.0.8", AF_INET, 1024, "rc=0(0) name=h8.corun.test");

    int64_t ms = (mono_ns() - start) / MS;
    long t = atomic_load(&ticks) - t0;
    /* At least 10 DNS round trips of 200 ms: the ticker ran meanwhile. */
    CHECKF(t >= 100, "the other thread ticked %ld times in %lld ms of lookups", t, (long long)ms);
    ticker_end();
}

/* ---- many: N lookups at once --------------------------------------------------------*/

static atomic_int ok_count;

static void *resolver(void *arg)
{
    int i = (int)(intptr_t)arg;
    char name[64], want[32], got[INET_ADDRSTRLEN] = "-";
    snprintf(name, sizeof name, "h%d.corun.test", i);
    snprintf(want, sizeof want, "10.0.%d.%d", i >> 8, i & 255);
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc == 0) {
        addr_str(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, got, sizeof got);
        CHECKF(res->ai_next == NULL, "%s: more than one answer", name);
        freeaddrinfo(res);
    }
    if (rc == 0 && !strcmp(got, want))
        atomic_fetch_add(&ok_count, 1);
    else
        failf(__LINE__, "%s: rc=%d (%s) address %s, expected %s", name, rc, rc ? gai_strerror(rc) : "ok",
              got, want);
    return NULL;
}

static int many_n = 200;

static void m_many(void)
{
    ticker_start();
    pthread_t *th = calloc((size_t)many_n, sizeof *th);
    long t0 = atomic_load(&ticks);
    int64_t start = mono_ns();
    for (int i = 0; i < many_n; i++)
        OK(pthread_create(&th[i], NULL, resolver, IP(i)));
    note_tasks();
    for (int i = 0; i < many_n; i++)
        OK(pthread_join(th[i], NULL));
    int64_t ms = (mono_ns() - start) / MS;
    long t = atomic_load(&ticks) - t0;
    ticker_end();
    printf("lookups=%d ok=%d ms=%lld ticks=%ld\n", many_n, atomic_load(&ok_count), (long long)ms, t);
    CHECK(atomic_load(&ok_count) == many_n);
    /* Each lookup takes 200 ms: the ticker (1 ms sleeps) kept running. */
    CHECKF(t >= 50, "the other thread ticked %ld times in %lld ms of lookups", t, (long long)ms);
    free(th);
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "each", m_each },
        { "many", m_many },
    };
    if (argc == 3 && !strcmp(argv[1], "many")) {
        many_n = atoi(argv[2]);
        if (many_n < 1 || many_n > 65535) {
            fprintf(stderr, "pt_dns many N: N must be 1..65535, not '%s'\n", argv[2]);
            return 2;
        }
        argc = 2;
    }
    return pt_main(modes, sizeof modes / sizeof *modes, argc, argv);
}
