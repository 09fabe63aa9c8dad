// C++ thread-locals and exceptions per thread (test_tls_green): the
// caught-exception stack of libstdc++ lives in TLS, so `throw;` in a catch
// block across a blocking call must rethrow the thread's own exception.
// Prints what pt_common.h's programs print ("corun=.. green=.. max_tasks=..",
// "PASS mode").
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

static std::atomic<int> failures{0};
static std::atomic<int> max_tasks{0};

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            std::fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #c);   \
            failures++;                                                          \
        }                                                                        \
    } while (0)

/* corun's helper threads run none of the program's: its monitor of
 * blocking calls, spare OS threads waiting for work. */
static bool corun_helper_task(const char *tid)
{
    char path[300], comm[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool helper = fgets(comm, sizeof comm, f) &&
                  (!strcmp(comm, "corun-monitor\n") || !strcmp(comm, "corun-spare\n"));
    fclose(f);
    return helper;
}

static int count_tasks()
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    while (struct dirent *e = d ? readdir(d) : nullptr)
        n += e->d_name[0] != '.' && !corun_helper_task(e->d_name);
    if (d)
        closedir(d);
    return n;
}

static void note_tasks()
{
    int n = count_tasks();
    int m = max_tasks.load();
    while (n > m && !max_tasks.compare_exchange_weak(m, n))
        ;
}

static bool corun_loaded()
{
    FILE *f = std::fopen("/proc/thread-self/maps", "r");
    char line[1024];
    bool found = false;
    while (f && !found && std::fgets(line, sizeof line, f))
        found = std::strstr(line, "/libcorun.so") != nullptr;
    if (f)
        std::fclose(f);
    return found;
}

// Rethrow inside a catch block after a blocking call, in many threads.
static void m_rethrow()
{
    const int threads = 8, rounds = 20;
    std::atomic<int> wrong{0}, checked{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; t++)
        ts.emplace_back([t, &wrong, &checked] {
            for (int r = 0; r < rounds; r++) {
                try {
                    throw std::runtime_error(std::to_string(t * 1000 + r));
                } catch (...) {
                    usleep(500);            // the others throw and catch meanwhile
                    note_tasks();
                    try {
                        throw;
                    } catch (const std::runtime_error &e) {
                        wrong += std::atoi(e.what()) != t * 1000 + r;
                        checked++;
                    }
                }
            }
        });
    for (auto &x : ts)
        x.join();
    if (wrong.load() || checked.load() != threads * rounds)
        std::fprintf(stderr, "rethrow: %d of %d wrong\n", wrong.load(), checked.load());
    CHECK(wrong.load() == 0 && checked.load() == threads * rounds);
}

// thread_local objects: one per thread, constructed on first use,
// destroyed when the thread exits (before join returns).
static std::atomic<int> made{0}, destroyed{0};
struct Counted {
    int owner = -1;
    Counted() { made++; }
    ~Counted() { destroyed++; }
};
static thread_local Counted counted;

static void m_thread_local_dtors()
{
    const int threads = 16;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; t++)
        ts.emplace_back([t] {
            counted.owner = t;
            usleep(1000);
            CHECK(counted.owner == t);
        });
    for (auto &x : ts)
        x.join();
    CHECK(made.load() == threads);
    CHECK(destroyed.load() == threads);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s rethrow|thread_local_dtors\n", argv[0]);
        return 2;
    }
    std::string mode = argv[1];
    if (mode == "rethrow")
        m_rethrow();
    else if (mode == "thread_local_dtors")
        m_thread_local_dtors();
    else
        return 2;
    note_tasks();
    const char *t = std::getenv("CORUN_THREADS");
    bool loaded = corun_loaded();
    std::printf("corun=%d green=%d max_tasks=%d\n", loaded,
                loaded && !(t && !std::strcmp(t, "native")), max_tasks.load());
    if (failures.load()) {
        std::printf("FAILED %s: %d check(s)\n", argv[1], failures.load());
        return 1;
    }
    std::printf("PASS %s\n", argv[1]);
    return 0;
}
