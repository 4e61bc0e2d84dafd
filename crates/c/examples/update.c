/* update: verify a signed image, then upgrade one or many devices over SMP at once.
 *
 *   update [--key KEY.pem]... [--no-confirm] [--wait SECONDS] IMAGE TARGET...
 *
 * TARGET is udp:HOST[:PORT] or serial:PATH[@BAUD]. Each target gets its own thread and its
 * own handle (handles are not shared between threads). The upgrade uploads the image, marks
 * it for a test boot, resets the device, waits for it to run the image and confirms it.
 * Exit status: 0 when every device runs the image, 1 when one failed, 2 on bad usage.
 *
 * Build: cc -Iinclude update.c -Ltarget/debug -lbrickless_c -pthread -o update */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brickless.h"

struct job {
    const char *target;
    const char *image;
    bool confirm;
    double wait_s;
    int last_tenth; /* progress already printed, in tenths */
    int code;
    char message[512]; /* copied: the library's message is per thread */
    BricklessUpgraded result;
    char *slots_json;
};

static void keep_error(struct job *j, int code) {
    j->code = code;
    snprintf(j->message, sizeof j->message, "%s", brickless_last_error_message());
}

static void on_progress(uint64_t done, uint64_t total, void *user) {
    struct job *j = user;
    int tenth = total ? (int)(done * 10 / total) : 10;
    if (tenth != j->last_tenth) {
        j->last_tenth = tenth;
        printf("%s: uploaded %3d%% (%llu of %llu bytes)\n", j->target, tenth * 10,
               (unsigned long long)done, (unsigned long long)total);
        fflush(stdout);
    }
}

static void *upgrade_one(void *arg) {
    struct job *j = arg;
    BricklessSmp *smp = NULL;
    int rc = brickless_smp_open(j->target, 5.0, &smp);
    if (rc != BRICKLESS_OK) {
        keep_error(j, rc);
        return NULL;
    }
    rc = brickless_smp_upgrade(smp, j->image, j->confirm, j->wait_s, on_progress, j, &j->result);
    if (rc != BRICKLESS_OK) {
        keep_error(j, rc);
    } else {
        /* What the device reports now, for the record. */
        rc = brickless_smp_list(smp, &j->slots_json);
        if (rc != BRICKLESS_OK)
            keep_error(j, rc);
    }
    brickless_smp_close(smp);
    return NULL;
}

static int usage(void) {
    fprintf(stderr, "usage: update [--key KEY.pem]... [--no-confirm] [--wait SECONDS] IMAGE TARGET...\n");
    return 2;
}

int main(int argc, char **argv) {
    if (brickless_abi_version() != BRICKLESS_ABI_VERSION) {
        fprintf(stderr, "libbrickless_c %s does not match this program's header\n", brickless_version());
        return 2;
    }
    const char *keys[16];
    size_t n_keys = 0;
    bool confirm = true;
    double wait_s = 30.0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc && n_keys < 16) {
            keys[n_keys++] = argv[++i];
        } else if (strcmp(argv[i], "--no-confirm") == 0) {
            confirm = false;
        } else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
            wait_s = atof(argv[++i]);
        } else {
            return usage();
        }
    }
    if (argc - i < 2)
        return usage();
    const char *image = argv[i++];
    int n = argc - i;

    /* Refuse a bad image before any device is touched. */
    BricklessVerified v;
    int rc = brickless_verify(image, keys, n_keys, &v);
    if (rc != BRICKLESS_OK) {
        fprintf(stderr, "error (%s): %s\n", brickless_error_name(rc), brickless_last_error_message());
        const char *help = brickless_last_error_help();
        if (help)
            fprintf(stderr, "  help: %s\n", help);
        return 1;
    }
    if (v.key_index >= 0)
        printf("%s: version %s, hash %s, signed by %s\n", image, v.version, v.hash, keys[v.key_index]);
    else
        printf("%s: version %s, hash %s (no key given: hash checked only)\n", image, v.version, v.hash);

    struct job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    if (!jobs || !threads)
        return 1;
    for (int k = 0; k < n; k++) {
        jobs[k] = (struct job){.target = argv[i + k], .image = image, .confirm = confirm,
                               .wait_s = wait_s, .last_tenth = -1};
        if (pthread_create(&threads[k], NULL, upgrade_one, &jobs[k]) != 0) {
            jobs[k].code = -1;
            snprintf(jobs[k].message, sizeof jobs[k].message, "cannot start a thread");
            threads[k] = 0;
        }
    }
    int failed = 0;
    for (int k = 0; k < n; k++) {
        struct job *j = &jobs[k];
        if (j->code != -1)
            pthread_join(threads[k], NULL);
        if (j->code != BRICKLESS_OK) {
            failed++;
            printf("%s: FAILED (%s): %s\n", j->target, brickless_error_name(j->code), j->message);
            continue;
        }
        printf("%s: runs %s, %s", j->target, j->result.version,
               j->result.confirmed ? "confirmed" : "NOT confirmed (a trial: reverts at the next reset)");
        if (j->result.already_running)
            printf(" (it already ran it: nothing uploaded)\n");
        else
            printf(" (%u bytes in %u requests)\n", j->result.bytes, j->result.requests);
        printf("%s: slots %s\n", j->target, j->slots_json ? j->slots_json : "[]");
        brickless_string_free(j->slots_json);
    }
    printf("%d of %d devices updated\n", n - failed, n);
    free(jobs);
    free(threads);
    return failed ? 1 : 0;
}
