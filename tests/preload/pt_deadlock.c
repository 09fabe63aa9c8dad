/*
 * pt_deadlock: a deadlock cycle for the live dump (CORUN_DUMP_SIGNAL=USR1),
 * run under the preload by test_inspect. 'holder' locks a mutex, then joins
 * 'taker'; 'taker' waits to lock that mutex. Main then sends itself SIGUSR1,
 * sleeps while the dump is written, prints "done" and exits (the two never
 * finish). With the argument "nocycle", 'holder' sleeps instead of joining:
 * 'taker' waits for it, but nothing waits for 'taker'. With "wait", main
 * prints "deadlocked", then joins 'holder' without raising anything: the
 * whole process waits, with no timer, for a dump asked for from outside.
 * With "own", main first installs its own SIGUSR1 handler, which prints
 * "own handler": the program keeps its signal (corun warns, no dump).
 * With "joins", 'taker' and 'holder' join each other (with several OS
 * threads they run on two: the cycle spans them).
 * Linked with -export-dynamic so backtraces can name the functions.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_t holder, taker;
static int cycle = 1;

__attribute__((noinline)) void *taker_main(void *arg)
{
    (void)arg;
    usleep(20000);                 /* the holder has the mutex by now */
    pthread_mutex_lock(&m);
    pthread_mutex_unlock(&m);
    return NULL;
}

__attribute__((noinline)) void *holder_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    if (cycle)
        pthread_join(taker, NULL);
    else
        sleep(5);
    pthread_mutex_unlock(&m);
    return NULL;
}

__attribute__((noinline)) void *joiner_main(void *arg)
{
    usleep(20000);                 /* both exist by now */
    pthread_join(*(pthread_t *)arg, NULL);
    return NULL;
}

static volatile sig_atomic_t own_calls;

static void own_handler(int sig)
{
    (void)sig;
    own_calls++;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "own")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_handler;
        sigaction(SIGUSR1, &sa, NULL);
    }
    cycle = !(argc > 1 && !strcmp(argv[1], "nocycle"));
    int wait = argc > 1 && !strcmp(argv[1], "wait");
    int joins = argc > 1 && !strcmp(argv[1], "joins");
    if (pthread_create(&taker, NULL, joins ? joiner_main : taker_main, &holder) != 0 ||
        pthread_create(&holder, NULL, joins ? joiner_main : holder_main, &taker) != 0)
        return 1;
    pthread_setname_np(taker, "taker");
    pthread_setname_np(holder, "holder");
    usleep(100000);
    if (wait) {
        printf("deadlocked\n");
        fflush(stdout);
        pthread_join(holder, NULL);
    }
    kill(getpid(), SIGUSR1);
    usleep(300000);
    if (own_calls)
        printf("own handler\n");
    printf("done\n");
    fflush(stdout);
    _exit(0);
}
