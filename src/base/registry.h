/* Link-time registration: a lower layer defines a set (a named ELF section
 * of pointers) and walks it; upper layers add entries with REGISTER. The
 * lower layer so learns of the upper ones without naming any of their
 * symbols, and the sets are complete before any code runs (hooks can run
 * before constructors). */
#ifndef CR_REGISTRY_H
#define CR_REGISTRY_H

#define CR_SET_SECTION(set) "cr_set_" #set

/* Declare the set's bounds (in the walking layer). */
#define REGISTRY_SET(set, type)                                                    \
    extern type *const __start_cr_set_##set[] __attribute__((weak, visibility("hidden"))); \
    extern type *const __stop_cr_set_##set[] __attribute__((weak, visibility("hidden")))

/* Add `obj` (an object of the set's type) to the set. */
#define REGISTER(set, obj)                                                          \
    static __typeof__(obj) *const cr_reg_##set##_##obj                              \
        __attribute__((used, section(CR_SET_SECTION(set)), aligned(sizeof(void *)))) = &(obj)

#define REGISTRY_FOREACH(set, var) \
    for (__typeof__(__start_cr_set_##set[0]) const *var = __start_cr_set_##set; var < __stop_cr_set_##set; var++)

#define REGISTRY_COUNT(set) ((unsigned)(__stop_cr_set_##set - __start_cr_set_##set))

#endif
