/*
 * echo-load: a blocking echo client, one thread per connection, that checks
 * every byte. Like echo-threaded, it knows nothing of corun; run it natively
 * or under coro-run.
 *
 *   echo-load --port N [--host ADDR] [--conns N] [--msgs N] [--size BYTES]
 *
 * Prints one line: connections, round trips, errors, seconds, round trips
 * per second, the p99 round-trip latency, and the OS threads seen while all
 * connections were open. Exits 1 if any byte or call went wrong.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in server;
static long msgs = 100, size = 64;
static pthread_barrier_t all_connected;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static long errors, trips;
static double *latencies;     /* conns * msgs samples, microseconds */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int count_tasks(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int full_io(int fd, char *buf, long n, int writing)
{
    long off = 0;
    while (off < n) {
        ssize_t r = writing ? write(fd, buf + off, (size_t)(n - off)) : read(fd, buf + off, (size_t)(n - off));
        if (r <= 0)
            return -1;
        off += r;
    }
    return 0;
}

static void *client(void *arg)
{
    long id = (long)arg, bad = 0, done = 0;
    char *out = malloc((size_t)size), *in = malloc((size_t)size);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&server, sizeof server) == 0;
    if (ok)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_barrier_wait(&all_connected);
    for (long m = 0; ok && m < msgs; m++) {
        for (long i = 0; i < size; i++)
            out[i] = (char)(id * 131 + m * 7 + i);
        double t0 = now_s();
        if (full_io(fd, out, size, 1) || full_io(fd, in, size, 0)) {
            ok = 0;
            break;
        }
        latencies[id * msgs + m] = (now_s() - t0) * 1e6;
        if (memcmp(out, in, (size_t)size))
            bad++;
        done++;
    }
    if (!ok)
        bad++;
    if (fd >= 0)
        close(fd);
    free(out);
    free(in);
    pthread_mutex_lock(&stats_lock);
    errors += bad;
    trips += done;
    pthread_mutex_unlock(&stats_lock);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    long conns = 100;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            goto usage;
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[++i];
        else if (!strcmp(argv[i], "--conns"))
            conns = atol(argv[++i]);
        else if (!strcmp(argv[i], "--msgs"))
            msgs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--size"))
            size = atol(argv[++i]);
        else
            goto usage;
    }
    if (port <= 0 || conns <= 0 || msgs <= 0 || size <= 0)
        goto usage;
    server = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1)
        goto usage;
    latencies = calloc((size_t)(conns * msgs), sizeof *latencies);
    pthread_t *t = calloc((size_t)conns, sizeof *t);
    pthread_barrier_init(&all_connected, NULL, (unsigned)conns + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);   /* lets thousands of native threads fit too */
    for (long i = 0; i < conns; i++) {
        if (pthread_create(&t[i], &attr, client, (void *)i) != 0) {
            fprintf(stderr, "echo-load: pthread_create failed after %ld threads\n", i);
            return 1;
        }
    }
    pthread_barrier_wait(&all_connected);
    int tasks = count_tasks();
    double t0 = now_s();
    for (long i = 0; i < conns; i++)
        pthread_join(t[i], NULL);
    double secs = now_s() - t0;
    qsort(latencies, (size_t)trips, sizeof *latencies, cmp);
    double p99 = trips ? latencies[(size_t)((double)trips * 0.99)] : 0;
    printf("conns=%ld trips=%ld errors=%ld secs=%.3f trips_per_s=%.0f p99_us=%.1f os_threads=%d\n",
           conns, trips, errors, secs, (double)trips / secs, p99, tasks);
    return errors || trips != conns * msgs;
usage:
    fprintf(stderr, "usage: echo-load --port N [--host ADDR] [--conns N] [--msgs N] [--size BYTES]\n");
    return 2;
}
