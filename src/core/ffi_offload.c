#include "ffi_offload.h"

#include <ctype.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <ffi.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "lock.h"
#include "offload.h"
#include "real.h"
#include "sched.h"
#include "rawsys.h"

#define TARGETS_MAX 64
#define ARGS_MAX 16

const char ffi_offload_syntax[] =
    "expected LIB:FUNCTION:SIGNATURE[,LIB:FUNCTION:SIGNATURE...], where LIB is a library's "
    "file name or path, and SIGNATURE is RET(ARGS), one type letter for the return value and "
    "one per argument: v (void, return only), c C (char), s S (short), i I (int), "
    "l L (long, size_t), p (pointer), f (float), d (double); lower case is signed, e.g. "
    "libfoo.so.1:foo_query:i(pld)";

/* One function to offload. */
struct target {
    char *lib, *fn;
    ffi_cif cif;
    ffi_type *args[ARGS_MAX];
    void *handle;           /* the library, held open: real must stay valid */
    void *real;             /* the function, once its library is loaded */
    ffi_closure *closure;
    void *code;             /* what patched GOT slots point to */
    bool no_function;       /* library loaded, function not in it: warned */
};

static struct target targets[TARGETS_MAX];
static int ntargets;
/* Read by the dlopen hook's first instructions. */
__attribute__((used)) char corun_dlopen_patching_on;

int ffi_offload_active(void)
{
    return ntargets > 0;
}

/* ---- CORUN_OFFLOAD syntax ---------------------------------------------------*/

static ffi_type *type_of(char c)
{
    switch (c) {
    case 'v': return &ffi_type_void;
    case 'c': return &ffi_type_sint8;
    case 'C': return &ffi_type_uint8;
    case 's': return &ffi_type_sint16;
    case 'S': return &ffi_type_uint16;
    case 'i': return &ffi_type_sint32;
    case 'I': return &ffi_type_uint32;
    case 'l': return &ffi_type_sint64;
    case 'L': return &ffi_type_uint64;
    case 'p': return &ffi_type_pointer;
    case 'f': return &ffi_type_float;
    case 'd': return &ffi_type_double;
    default: return NULL;
    }
}

static bool c_identifier(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static int parse_signature(struct target *t, const char *sig, const char *entry, char *err,
                           size_t errlen)
{
    size_t n = strlen(sig);
    if (n < 3 || sig[1] != '(' || sig[n - 1] != ')') {
        snprintf(err, errlen, "in '%s', the signature '%s' is not RET(ARGS)", entry, sig);
        return -1;
    }
    ffi_type *ret = type_of(sig[0]);
    if (!ret) {
        snprintf(err, errlen, "in '%s', '%c' is not a type letter", entry, sig[0]);
        return -1;
    }
    unsigned nargs = 0;
    for (size_t i = 2; i < n - 1; i++) {
        ffi_type *a = type_of(sig[i]);
        if (!a || sig[i] == 'v') {
            snprintf(err, errlen, a ? "in '%s', 'v' (void) is only allowed as the return type"
                                    : "in '%s', '%c' is not a type letter", entry, sig[i]);
            return -1;
        }
        if (nargs == ARGS_MAX) {
            snprintf(err, errlen, "in '%s', more than %d arguments", entry, ARGS_MAX);
            return -1;
        }
        t->args[nargs++] = a;
    }
    if (ffi_prep_cif(&t->cif, FFI_DEFAULT_ABI, nargs, ret, t->args) != FFI_OK) {
        snprintf(err, errlen, "in '%s', libffi rejects the signature '%s'", entry, sig);
        return -1;
    }
    return 0;
}

static int parse_entry(char *entry, char *err, size_t errlen)
{
    char *c1 = strchr(entry, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || strchr(c2 + 1, ':')) {
        snprintf(err, errlen, "'%s' does not have three fields separated by ':'", entry);
        return -1;
    }
    *c1 = *c2 = '\0';
    const char *lib = entry, *fn = c1 + 1, *sig = c2 + 1;
    char shown[512];
    snprintf(shown, sizeof shown, "%s:%s:%s", lib, fn, sig);
    if (!*lib) {
        snprintf(err, errlen, "in '%s', the library name is empty", shown);
        return -1;
    }
    if (!c_identifier(fn)) {
        snprintf(err, errlen, "in '%s', '%s' is not a C function name", shown, fn);
        return -1;
    }
    for (int i = 0; i < ntargets; i++)
        if (!strcmp(targets[i].lib, lib) && !strcmp(targets[i].fn, fn)) {
            snprintf(err, errlen, "%s:%s is named twice", lib, fn);
            return -1;
        }
    if (ntargets == TARGETS_MAX) {
        snprintf(err, errlen, "more than %d functions", TARGETS_MAX);
        return -1;
    }
    struct target *t = &targets[ntargets];
    memset(t, 0, sizeof *t);
    if (parse_signature(t, sig, shown, err, errlen) != 0)
        return -1;
    t->lib = strdup(lib);
    t->fn = strdup(fn);
    if (!t->lib || !t->fn) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ntargets++;
    return 0;
}

int ffi_offload_parse(const char *spec, char *err, size_t errlen)
{
    char *copy = strdup(spec);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    char *p = copy;
    for (int i = 1;; i++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p) {
            snprintf(err, errlen, "entry %d is empty", i);
            rc = -1;
            break;
        }
        if ((rc = parse_entry(p, err, errlen)) != 0)
            break;
        if (!comma)
            break;
        p = comma + 1;
    }
    free(copy);
    if (rc != 0) {
        for (int i = 0; i < ntargets; i++) {
            free(targets[i].lib);
            free(targets[i].fn);
        }
        ntargets = 0;
    }
    corun_dlopen_patching_on = ntargets > 0;
    return rc;
}

/* ---- the closure ---------------------------------------------------------------*/

struct call {
    struct target *t;
    void *ret;
    void **args;
    int err;
};

static void call_run(void *p)
{
    struct call *c = p;
    errno = c->err;         /* as the caller had it: the function may leave it alone */
    ffi_call(&c->t->cif, FFI_FN(c->t->real), c->ret, c->args);
}

/* Every redirected call lands here, with its arguments in libffi's form:
 * they stay on the caller's stack, which lives while it is parked. */
static void closure_entry(ffi_cif *cif, void *ret, void **args, void *data)
{
    CATCH_HOLD();               /* an entry from the program, like a hook */
    struct target *t = data;
    int saved = errno;          /* the gate's first use on a thread sets up its loop */
    struct sched *s = sched_for_program();   /* a hook of its own kind: the same gate */
    if (s && sched_alone(s))
        s = NULL;
    errno = saved;
    if (!s) {
        ffi_call(cif, FFI_FN(t->real), ret, args);
        return;
    }
    struct call c = { .t = t, .ret = ret, .args = args, .err = saved };
    offload_run(s, call_run, &c);
}

/* ---- finding the functions --------------------------------------------------------*/

struct object {
    const char *name;
    ElfW(Addr) base;
    const ElfW(Phdr) *phdr;
    ElfW(Half) phnum;
};

struct objects {
    struct object *v;
    size_t n, cap;
};

static int collect(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct objects *o = data;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        struct object *v = realloc(o->v, cap * sizeof *v);
        if (!v)
            return 1;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = (struct object){ info->dlpi_name ? info->dlpi_name : "", info->dlpi_addr,
                                    info->dlpi_phdr, info->dlpi_phnum };
    return 0;
}

static bool names_lib(const char *path, const char *lib)
{
    if (!*path)
        return false;
    if (!strcmp(path, lib))
        return true;
    const char *slash = strrchr(path, '/');
    return !strchr(lib, '/') && slash && !strcmp(slash + 1, lib);
}

/* The library of t is loaded as obj: find the function, make its closure. */
static void resolve(struct target *t, const struct object *obj)
{
    void *h = libc_dlopen(obj->name, RTLD_LAZY | RTLD_NOLOAD);
    if (!h)
        return;
    dlerror();
    void *f = dlsym(h, t->fn);
    if (!f) {
        if (!t->no_function)
            diag_print("warning: CORUN_OFFLOAD: %s has no function %s; its calls are not "
                       "offloaded", obj->name, t->fn);
        t->no_function = true;
        dlclose(h);
        return;
    }
    t->closure = ffi_closure_alloc(sizeof(ffi_closure), &t->code);
    if (!t->closure || ffi_prep_closure_loc(t->closure, &t->cif, closure_entry, t, t->code) != FFI_OK) {
        diag_print("warning: CORUN_OFFLOAD: cannot make a libffi closure for %s:%s; its calls are "
                   "not offloaded", t->lib, t->fn);
        if (t->closure)
            ffi_closure_free(t->closure);
        t->closure = NULL;
        t->no_function = true;
        dlclose(h);
        return;
    }
    t->handle = h;
    __atomic_store_n(&t->real, f, __ATOMIC_RELEASE);
}

/* ---- patching GOT slots ----------------------------------------------------------*/

static bool in_segment(const struct object *o, uintptr_t a, unsigned type)
{
    for (ElfW(Half) i = 0; i < o->phnum; i++) {
        const ElfW(Phdr) *ph = &o->phdr[i];
        if (ph->p_type == type && a >= o->base + ph->p_vaddr && a < o->base + ph->p_vaddr + ph->p_memsz)
            return true;
    }
    return false;
}

static void write_slot(const struct object *o, void **slot, void *value)
{
    if (!in_segment(o, (uintptr_t)slot, PT_GNU_RELRO)) {
        __atomic_store_n(slot, value, __ATOMIC_RELEASE);
        return;
    }
    /* Made read-only after relocation (RELRO): open it for the one write. */
    long page = sysconf(_SC_PAGESIZE);
    void *lo = (void *)((uintptr_t)slot & ~(uintptr_t)(page - 1));
    if (rs_mprotect(lo, (size_t)page, PROT_READ | PROT_WRITE) != 0) {
        diag_print("warning: CORUN_OFFLOAD: cannot patch %s: mprotect: %s", o->name, strerror(errno));
        return;
    }
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    rs_mprotect(lo, (size_t)page, PROT_READ);
}

/* Dynamic-section addresses are relocated in place by the loader, except
 * in objects it did not relocate (the vDSO). */
static uintptr_t dyn_addr(const struct object *o, ElfW(Addr) v)
{
    return v < o->base ? o->base + v : v;
}

static void patch_relocs(const struct object *o, const ElfW(Rela) *r, size_t bytes, const ElfW(Sym) *symtab,
                         const char *strtab)
{
    for (size_t i = 0; i < bytes / sizeof *r; i++) {
        unsigned type = ELF64_R_TYPE(r[i].r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
            continue;
        const ElfW(Sym) *sym = &symtab[ELF64_R_SYM(r[i].r_info)];
        if (sym->st_shndx != SHN_UNDEF)
            continue;               /* the object's own definition: its internal calls stay */
        const char *name = strtab + sym->st_name;
        for (int k = 0; k < ntargets; k++) {
            struct target *t = &targets[k];
            if (!t->real || strcmp(name, t->fn))
                continue;
            void **slot = (void **)(o->base + r[i].r_offset);
            void *cur = *slot;
            /* Bound to the named library's function, or not bound yet (lazy
             * binding: it points back into the object's own PLT). */
            if (cur == t->code || (cur != t->real && !in_segment(o, (uintptr_t)cur, PT_LOAD)))
                continue;
            write_slot(o, slot, t->code);
        }
    }
}

static void patch_object(const struct object *o)
{
    const ElfW(Dyn) *dyn = NULL;
    for (ElfW(Half) i = 0; i < o->phnum; i++)
        if (o->phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(o->base + o->phdr[i].p_vaddr);
    if (!dyn)
        return;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmprel_size = 0, rela_size = 0;
    bool pltrel_rela = true;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)dyn_addr(o, dyn->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)dyn_addr(o, dyn->d_un.d_ptr); break;
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_addr(o, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: jmprel_size = dyn->d_un.d_val; break;
        case DT_PLTREL: pltrel_rela = dyn->d_un.d_val == DT_RELA; break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_addr(o, dyn->d_un.d_ptr); break;
        case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
        default: break;
        }
    }
    if (!symtab || !strtab)
        return;
    if (jmprel && pltrel_rela)
        patch_relocs(o, jmprel, jmprel_size, symtab, strtab);
    if (rela)
        patch_relocs(o, rela, rela_size, symtab, strtab);
}

static cr_lock_t patch_lock = CR_LOCK_INIT;

void ffi_offload_patch_all(void)
{
    if (!ntargets)
        return;
    cr_lock(&patch_lock);
    struct objects objs = { 0 };
    /* Collected first: dlopen and dlsym must not run inside the
     * iteration, which holds the loader's lock. */
    dl_iterate_phdr(collect, &objs);
    for (int k = 0; k < ntargets; k++)
        for (size_t i = 0; !targets[k].real && !targets[k].no_function && i < objs.n; i++)
            if (names_lib(objs.v[i].name, targets[k].lib))
                resolve(&targets[k], &objs.v[i]);
    uintptr_t self = (uintptr_t)&ffi_offload_patch_all;
    for (size_t i = 0; i < objs.n; i++) {
        const struct object *o = &objs.v[i];
        const char *slash = strrchr(o->name, '/');
        const char *file = slash ? slash + 1 : o->name;
        if (in_segment(o, self, PT_LOAD) || !strncmp(file, "ld-linux", 8))
            continue;           /* corun itself, and the dynamic linker */
        patch_object(o);
    }
    free(objs.v);
    cr_unlock(&patch_lock);
}

/* Libraries named but never loaded: most likely a misspelt name. Said once,
 * by the process that read the setting, when it exits. */
static pid_t loaded_by;

__attribute__((destructor)) static void report_unloaded(void)
{
    if (getpid() != loaded_by || cr_config.log_level < LOG_WARN)
        return;
    for (int k = 0; k < ntargets; k++)
        if (!targets[k].real && !targets[k].no_function)
            diag_print("warning: CORUN_OFFLOAD: %s was never loaded; %s was not offloaded",
                       targets[k].lib, targets[k].fn);
}

__attribute__((constructor)) static void ffi_offload_on_load(void)
{
    config_load();
    loaded_by = getpid();
    ffi_offload_patch_all();
}

static const struct setting_check offload_check = {
    "CORUN_OFFLOAD", ffi_offload_parse, ffi_offload_syntax,
};
REGISTER(setting_checks, offload_check);
