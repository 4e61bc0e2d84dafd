/* A QEMU TCG plugin that counts guest instructions executed until the first execution of a
 * given address, then prints the count: `-plugin insn_count.so,stop=0x08028401`.
 *
 * The plugin API types and functions it uses are declared here by hand (their C ABI, as
 * QEMU documents it), so nothing of QEMU's own source is built into it. Counting is per
 * translation block: every time a block runs, its instruction count is added, which is exact
 * for code that runs blocks to their end (no exceptions mid-block). */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb)(unsigned int vcpu_index, void *userdata);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 2;

static uint64_t executed;
static uint64_t stop_at = UINT64_MAX;
static bool reported;

static void report(const char *why)
{
    char line[96];
    snprintf(line, sizeof line, "insn_count: %" PRIu64 " instructions (%s)\n", executed, why);
    qemu_plugin_outs(line);
}

/* The block's instruction count travels as the callback's user data. */
static void block_ran(unsigned int vcpu, void *n_insns)
{
    (void)vcpu;
    executed += (uintptr_t)n_insns;
}

static void stop_reached(unsigned int vcpu, void *unused)
{
    (void)vcpu;
    (void)unused;
    if (!reported) {
        reported = true;
        report("stop address reached");
    }
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uintptr_t n = qemu_plugin_tb_n_insns(tb);
    /* The stop check comes first, so the count excludes the block at the stop address. */
    if ((qemu_plugin_tb_vaddr(tb) | 1) == (stop_at | 1))
        qemu_plugin_register_vcpu_tb_exec_cb(tb, stop_reached, QEMU_PLUGIN_CB_NO_REGS, NULL);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, block_ran, QEMU_PLUGIN_CB_NO_REGS, (void *)n);
}

static void at_exit(qemu_plugin_id_t id, void *unused)
{
    (void)id;
    (void)unused;
    if (!reported)
        report("at exit, stop address never reached");
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "stop=", 5) == 0)
            stop_at = strtoull(argv[i] + 5, NULL, 0);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
