/*
 * insncount: a QEMU TCG plugin that counts executed guest instructions per
 * function symbol, exactly and repeatably, and writes them at exit as
 * "symbol<TAB>count" lines (sorted by symbol) to the file named by the
 * "outfile=" argument:
 *
 *   qemu-riscv64 -plugin libinsncount.so,outfile=counts.tsv ./prog
 *
 * Two extra lines: "<total>" is counted per translation block, independently
 * of the per-instruction counters, so it cross-checks them; "<unknown>" holds
 * instructions outside any sized STT_FUNC symbol.
 *
 * Counters are plain inline adds emitted into the translated code (no helper
 * calls), so they are cheap but not atomic: single-threaded guests only.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Debian's qemu-user ships no qemu-plugin.h, so we declare the few pieces of
 * plugin API version 1 (QEMU 4.2 to 8.x; qemu 7.2 here) that we use, copied
 * from that header. Version 2 (QEMU 9) removed the *_exec_inline functions.
 * qemu_plugin_outs() prints only under "-d plugin", so errors go to stderr.
 */
#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* only passed through by pointer */
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id,
                                               struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id,
                                    qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                              enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb,
                                                 size_t idx);
const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* One counter per symbol name. Entries never move once allocated, because
 * translated code holds pointers to their counters. */
struct entry {
    struct entry *next;
    uint64_t count;
    char name[];
};

#define N_BUCKETS 4096
static struct entry *buckets[N_BUCKETS];
static size_t n_entries;
static uint64_t total;
static char *outfile;

static uint64_t *counter_for(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = name; *p; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    struct entry **slot = &buckets[h % N_BUCKETS];
    for (struct entry *e = *slot; e; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            return &e->count;
        }
    }
    size_t len = strlen(name) + 1;
    struct entry *e = malloc(sizeof(*e) + len);
    if (!e) {
        fputs("insncount: out of memory\n", stderr);
        abort();
    }
    memcpy(e->name, name, len);
    e->count = 0;
    e->next = *slot;
    *slot = e;
    n_entries++;
    return &e->count;
}

/* Runs once per translated block (not per execution): plant the counters. */
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                             &total, n);
    /* Per instruction, not per block: a block may span two symbols. */
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const char *sym = qemu_plugin_insn_symbol(insn);
        qemu_plugin_register_vcpu_insn_exec_inline(
            insn, QEMU_PLUGIN_INLINE_ADD_U64, counter_for(sym ? sym : "<unknown>"), 1);
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct entry *const *)a)->name,
                  (*(struct entry *const *)b)->name);
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    struct entry **sorted = malloc((n_entries + 1) * sizeof(*sorted));
    FILE *f = fopen(outfile, "w");
    if (!sorted || !f) {
        perror("insncount: cannot write the output file");
        return;
    }
    size_t n = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        for (struct entry *e = buckets[b]; e; e = e->next) {
            sorted[n++] = e;
        }
    }
    qsort(sorted, n, sizeof(*sorted), by_name);
    fprintf(f, "<total>\t%llu\n", (unsigned long long)total);
    for (size_t i = 0; i < n; i++) {
        if (sorted[i]->count) {
            fprintf(f, "%s\t%llu\n", sorted[i]->name,
                    (unsigned long long)sorted[i]->count);
        }
    }
    if (fclose(f) != 0) {
        perror("insncount: cannot write the output file");
    }
    free(sorted);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0) {
            outfile = argv[i] + 8; /* argv lives as long as the plugin */
        } else {
            fprintf(stderr, "insncount: unknown argument %s (want outfile=PATH)\n", argv[i]);
            return -1;
        }
    }
    if (!outfile || !*outfile) {
        fputs("insncount: missing argument outfile=PATH\n", stderr);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
