/*
 * greenlet-switch - two coroutines handing control to each other explicitly.
 *
 * A C rendering of greenlet's introductory example:
 *
 *     def test1():            def test2():
 *         print(12)               print(56)
 *         gr2.switch()            gr1.switch()
 *         print(34)               print(78)
 *
 *     gr1 = greenlet(test1); gr2 = greenlet(test2)
 *     gr1.switch()            # prints 12, 56, 34
 *     gr2.switch()            # prints 78
 *
 * Nothing here is scheduled: every transfer of control is a corun_switch().
 * When test1 returns, control goes back to main (its spawner, suspended in
 * corun_switch), exactly like a greenlet returning to its parent. test2 is
 * then still suspended half-way; main switches to it once more so that it
 * prints 78 and finishes, which again returns control to main.
 */
#include <corun.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static corun_t *gr1, *gr2;

static void check(int err, const char *what)
{
    if (err != 0) {
        fprintf(stderr, "greenlet-switch: %s: %s\n", what, strerror(err));
        exit(1);
    }
}

static void say(const char *who, const char *what)
{
    printf("  %-6s %s\n", who, what);
}

static void *test1(void *arg)
{
    (void)arg;
    say("test1", "prints 12");
    printf("12\n");
    say("test1", "switches to test2");
    corun_switch(gr2, NULL);
    say("test1", "is back, prints 34");
    printf("34\n");
    say("test1", "returns: control goes back to main, its spawner");
    return "test1 done";
}

static void *test2(void *arg)
{
    (void)arg;
    say("test2", "prints 56");
    printf("56\n");
    say("test2", "switches to test1");
    corun_switch(gr1, NULL);
    say("test2", "is back, prints 78");
    printf("78\n");
    say("test2", "returns: control goes back to main, its spawner");
    return "test2 done";
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    check(corun_spawn(&gr1, &(corun_attr_t){ .name = "test1" }, test1, NULL),
          "spawn test1");
    check(corun_spawn(&gr2, &(corun_attr_t){ .name = "test2" }, test2, NULL),
          "spawn test2");

    say("main", "switches to test1");
    void *r = corun_switch(gr1, NULL);
    printf("  %-6s resumed with \"%s\"\n", "main", (const char *)r);

    say("main", "switches to test2 once more");
    r = corun_switch(gr2, NULL);
    printf("  %-6s resumed with \"%s\"\n", "main", (const char *)r);

    /* Both have finished: join only releases them. */
    check(corun_join(gr1, NULL), "join test1");
    check(corun_join(gr2, NULL), "join test2");
    say("main", "done: the numbers came out as 12 56 34 78");
    return 0;
}
