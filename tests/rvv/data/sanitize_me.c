/*
 * Misbehaves on request, for testing the sanitized native build.
 * argv[1]: "clean" (no bug), "oob" (heap write one past the end),
 * "overflow" (signed int overflow). Sizes come from argv so the compiler
 * cannot see the bug.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    int n = argc > 2 ? atoi(argv[2]) : 16;
    int *buf = malloc(n * sizeof(*buf));
    if (!buf) {
        return 2;
    }
    int end = strcmp(mode, "oob") == 0 ? n + 1 : n;
    for (int i = 0; i < end; i++) {
        buf[i] = i;
    }
    int sum = strcmp(mode, "overflow") == 0 ? INT_MAX - n + 2 : 0;
    for (int i = 0; i < n; i++) {
        sum += buf[i];
    }
    printf("%d\n", sum);
    free(buf);
    return 0;
}
