/*
 * Generic offload (CORUN_OFFLOAD): blocking functions of any shared
 * library, named with their C signature, run on libuv's pool while the
 * calling green thread parks.
 *
 *   CORUN_OFFLOAD="LIB:FUNCTION:SIGNATURE[,LIB:FUNCTION:SIGNATURE...]"
 *
 * LIB is the library's file name as loaded (libpq.so.5) or its path;
 * SIGNATURE is RET(ARGS): one letter for the return type and one per
 * argument, from v (void, return only), c/C (signed/unsigned char),
 * s/S (short), i/I (int), l/L (long, long long, size_t, ssize_t),
 * p (any pointer), f (float), d (double). E.g. "i(pld)" is
 * int f(void *, long, double). Variadic functions cannot be offloaded.
 *
 * Each reference to FUNCTION in the GOT of every loaded object (and of
 * objects dlopen()ed later) is redirected to a libffi closure that calls the
 * real function: on the pool from a green thread that is not alone, directly
 * otherwise.
 */
#ifndef CR_FFI_OFFLOAD_H
#define CR_FFI_OFFLOAD_H

#include <stddef.h>

/* Parse and remember a CORUN_OFFLOAD value. Returns 0, or -1 with what is
 * wrong in err. */
int ffi_offload_parse(const char *spec, char *err, size_t errlen);

/* The syntax, for error messages. */
extern const char ffi_offload_syntax[];

/* Is any function to be offloaded? */
int ffi_offload_active(void);

/* Resolve the named functions in the libraries loaded now and patch every
 * loaded object's references to them (at load, and after each dlopen). */
void ffi_offload_patch_all(void);

#endif
