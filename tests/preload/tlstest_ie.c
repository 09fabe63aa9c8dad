/* A library with initial-exec TLS, for pt_tls dlopen_tls: it is placed in
 * static TLS when dlopen'ed, so threads that exist then must get its image. */
static __thread int value __attribute__((tls_model("initial-exec"))) = 42;

int tlstest_ie_get(void)
{
    return value;
}

void tlstest_ie_set(int v)
{
    value = v;
}
