/*
 * test_splice_green.c - sendfile, splice, tee and vmsplice seen from an
 * unmodified program: tests/pt_splice, a plain pthread program not linked
 * with corun, run as `pt_splice MODE` three ways, as three suites:
 *
 *   splice_green   LD_PRELOAD=libcorun.so CORUN_THREADS=green
 *   splice_native  LD_PRELOAD=libcorun.so CORUN_THREADS=native
 *   splice_plain   no libcorun: proves the program's expectations (counts,
 *                  errno, offsets, signals) are what the kernel really does
 *
 * A mode passes when the program exits 0 and prints "PASS MODE"; the green
 * runs must also have had libcorun loaded, green, on one OS thread.
 */
#include "testutil.h"
#include "preload_run.h"

TestSuite(splice_green, .timeout = 60);
TestSuite(splice_native, .timeout = 60);
TestSuite(splice_plain, .timeout = 60);

/* A mode run all three ways (preload_run.h). */
#define SPLICE(mode) MATRIX(splice, mode, pt_splice, mode, NULL)

/* 16 MiB from a regular file into a socket whose reader is another thread
 * of the process: one blocking call sends all of it; an offset moves, the
 * file position does not (and without an offset, the position moves). */
SPLICE(sendfile_unix)
SPLICE(sendfile_tcp)
/* Into a pipe: each call moves what fits, the loop moves 16 MiB. */
SPLICE(sendfile_pipe)
/* Past the end of the file: what is left, then 0. */
SPLICE(sendfile_eof)
/* SO_SNDTIMEO with nobody reading: what fit (and *off says so), after the
 * timeout, parked; then EAGAIN. */
SPLICE(sendfile_sndtimeo)
/* A signal (no SA_RESTART) while the socket is full: the count so far,
 * then EINTR when nothing was sent; the file position moved by the count. */
SPLICE(sendfile_eintr)
/* A closed peer: EPIPE, one SIGPIPE, the file position unmoved. */
SPLICE(sendfile_epipe)

/* 16 MiB through splice: file to pipe, pipe to socket (AF_UNIX, TCP),
 * socket to pipe, pipe to pipe; every byte checked. */
SPLICE(splice_file_pipe)
SPLICE(splice_pipe_unix)
SPLICE(splice_pipe_tcp)
SPLICE(splice_unix_pipe)
SPLICE(splice_tcp_pipe)
SPLICE(splice_pipe_pipe)
/* A signal while splice waits for room in the socket: EINTR. */
SPLICE(splice_eintr)

/* tee duplicates 16 MiB into a second pipe; vmsplice into and out of a
 * pipe. */
SPLICE(tee)
SPLICE(vmsplice)
