/*
 * A function of exactly 10 instructions (9 + ret) written in assembly, so its
 * dynamic instruction count is known: 10 per call. argv[1] = number of calls.
 * Builds for any RISC-V target (no vector instructions).
 */
#include <stdio.h>
#include <stdlib.h>

long straight10(long x);
__asm__(
    ".text\n"
    ".globl straight10\n"
    ".type straight10, @function\n" /* qemu attributes only sized STT_FUNC symbols */
    "straight10:\n"
    "    addi a0, a0, 1\n"
    "    slli a0, a0, 1\n"
    "    addi a0, a0, -1\n"
    "    xori a0, a0, 5\n"
    "    andi a0, a0, 1023\n"
    "    addi a0, a0, 3\n"
    "    srli a0, a0, 1\n"
    "    ori a0, a0, 64\n"
    "    addi a0, a0, 7\n"
    "    ret\n"
    ".size straight10, . - straight10\n");

int main(int argc, char **argv)
{
    long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
    long x = 0;
    for (long i = 0; i < calls; i++) {
        x = straight10(x + i);
    }
    printf("%ld\n", x);
    return 0;
}
