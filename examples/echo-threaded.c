/*
 * echo-threaded: a classic blocking echo server, one thread per connection.
 * Written the simple way, with no knowledge of corun: run it natively and
 * every client costs a kernel thread; run it under `coro-run` and the
 * threads become green threads on one OS thread.
 *
 *   echo-threaded [--port N] [--host ADDR] [--max-conns N]
 *
 * Prints "listening on ADDR:PORT" once ready (port 0 picks a free one).
 * Stops after --max-conns connections have been served, if given.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_mutex_t served_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t served_cond = PTHREAD_COND_INITIALIZER;
static long served, max_conns;

static void *serve(void *arg)
{
    int fd = (int)(long)arg;
    char buf[16384];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0)
                goto done;
            off += w;
        }
    }
done:
    close(fd);
    pthread_mutex_lock(&served_lock);
    served++;
    pthread_cond_signal(&served_cond);
    pthread_mutex_unlock(&served_lock);
    return NULL;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--port N] [--host ADDR] [--max-conns N]\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--max-conns") && i + 1 < argc)
            max_conns = atol(argv[++i]);
        else
            usage(argv[0]);
    }
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        usage(argv[0]);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4096) != 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t len = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    printf("listening on %s:%d\n", host, ntohs(sa.sin_port));
    fflush(stdout);

    for (long accepted = 0; !max_conns || accepted < max_conns; accepted++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, serve, (void *)(long)fd) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            close(fd);
        }
        pthread_attr_destroy(&attr);
    }
    /* --max-conns: wait for the last clients to finish, then stop. */
    pthread_mutex_lock(&served_lock);
    while (served < max_conns)
        pthread_cond_wait(&served_cond, &served_lock);
    pthread_mutex_unlock(&served_lock);
    close(lfd);
    return 0;
}
