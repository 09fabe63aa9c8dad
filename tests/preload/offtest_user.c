/*
 * libofftest_user.so - calls libofftest through its PLT: loaded with dlopen
 * by pt_offload_dl, it checks that objects loaded later are patched too.
 */
long offtest_slow(int a, double d, const char *s, long b);
char offtest_grade(unsigned char score, float bonus, int *out);

long offtest_user_slow(int a, double d, const char *s, long b)
{
    return offtest_slow(a, d, s, b);
}

char offtest_user_grade(unsigned char score, float bonus, int *out)
{
    return offtest_grade(score, bonus, out);
}
