/* A library with general-dynamic TLS, for pt_tls dlopen_tls: each thread's
 * block is made on its first access (__tls_get_addr). */
static __thread int value __attribute__((tls_model("global-dynamic"))) = 43;

int tlstest_gd_get(void)
{
    return value;
}

void tlstest_gd_set(int v)
{
    value = v;
}
