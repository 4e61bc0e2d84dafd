/* The C API's contract, checked from C: images through sign/verify/inspect, every kind of
 * bad argument (a code and a message naming it, never a crash), and an SMP upload cancelled
 * from another thread.
 *
 *   api_checks DEV_KEY OTHER_KEY WORKDIR SMP_TARGET
 *
 * WORKDIR holds raw.bin (a firmware payload); SMP_TARGET is a blank virtual device. Prints
 * "ok NAME ..." per check and "FAIL ..." per failure; exits 1 if any check failed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brickless.h"

static int failures;

static void check(const char *name, bool cond, const char *detail) {
    if (cond) {
        printf("ok %s\n", name);
    } else {
        failures++;
        printf("FAIL %s: %s [last error: %s]\n", name, detail, brickless_last_error_message());
    }
}

/* `rc` is `want` and the message mentions `needle`. */
static void expect(const char *name, int rc, int want, const char *needle) {
    const char *m = brickless_last_error_message();
    if (rc == want && (!needle || strstr(m, needle))) {
        printf("ok %s: %s: %s\n", name, brickless_error_name(rc), m);
    } else {
        failures++;
        printf("FAIL %s: got %d (%s) \"%s\"; want %d (%s) naming \"%s\"\n", name, rc,
               brickless_error_name(rc), m, want, brickless_error_name(want), needle ? needle : "");
    }
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Writes the first `keep` bytes of `from` to `to`. */
static bool truncate_copy(const char *from, const char *to, long keep) {
    FILE *in = fopen(from, "rb");
    if (!in)
        return false;
    char *buf = malloc((size_t)keep);
    size_t got = buf ? fread(buf, 1, (size_t)keep, in) : 0;
    fclose(in);
    FILE *out = fopen(to, "wb");
    bool ok = out && fwrite(buf, 1, got, out) == got && got == (size_t)keep;
    if (out)
        fclose(out);
    free(buf);
    return ok;
}

/* Cancellation: the first progress report hands over to a second thread, which cancels;
 * the report returns only after the cancel, so the upload cannot finish first. */
struct cancel_ctx {
    BricklessSmp *smp;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int state; /* 0: uploading, 1: first report seen, 2: cancelled */
    int reports;
    uint64_t first_done, total;
};

static void *canceller(void *arg) {
    struct cancel_ctx *c = arg;
    pthread_mutex_lock(&c->lock);
    while (c->state != 1)
        pthread_cond_wait(&c->changed, &c->lock);
    brickless_smp_cancel(c->smp);
    c->state = 2;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void cancel_progress(uint64_t done, uint64_t total, void *user) {
    struct cancel_ctx *c = user;
    pthread_mutex_lock(&c->lock);
    c->reports++;
    if (c->state == 0) {
        c->first_done = done;
        c->total = total;
        c->state = 1;
        pthread_cond_broadcast(&c->changed);
        while (c->state != 2)
            pthread_cond_wait(&c->changed, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: api_checks DEV_KEY OTHER_KEY WORKDIR SMP_TARGET\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep every line if something crashes */
    const char *dev_key = argv[1], *other_key = argv[2], *dir = argv[3], *target = argv[4];
    char *raw = join(dir, "raw.bin"), *signed_img = join(dir, "signed.bin"),
         *truncated = join(dir, "truncated.bin"), *missing = join(dir, "missing.bin");
    if (!raw || !signed_img || !truncated || !missing)
        return 2;

    /* Version and codes. */
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", BRICKLESS_VERSION_MAJOR, BRICKLESS_VERSION_MINOR,
             BRICKLESS_VERSION_PATCH);
    check("version", strcmp(brickless_version(), want) == 0, brickless_version());
    check("abi", brickless_abi_version() == BRICKLESS_ABI_VERSION, "ABI differs");
    check("error_name", strcmp(brickless_error_name(BRICKLESS_ERR_VERIFICATION), "verification") == 0 &&
                            strcmp(brickless_error_name(0), "ok") == 0 &&
                            strcmp(brickless_error_name(9999), "unknown") == 0,
          "names");

    /* Sign, inspect, verify. */
    BricklessSignOptions so = brickless_sign_options_default();
    so.version = "1.2.3";
    so.header_size = 0x400;
    so.slot_size = 0xc0000;
    so.align = 32;
    expect("sign", brickless_sign(raw, signed_img, dev_key, &so), BRICKLESS_OK, NULL);
    check("no error after success", brickless_last_error_message()[0] == '\0', "message left");
    char *json = NULL;
    expect("inspect", brickless_inspect(signed_img, &json), BRICKLESS_OK, NULL);
    check("inspect json", json && strstr(json, "\"version\":\"1.2.3\"") && strstr(json, "\"signed\":true"),
          json ? json : "NULL");
    brickless_string_free(json);
    json = NULL;
    const char *both[2] = {other_key, dev_key};
    BricklessVerified v;
    memset(&v, 0, sizeof v);
    expect("verify", brickless_verify(signed_img, both, 2, &v), BRICKLESS_OK, NULL);
    check("verify result", strcmp(v.version, "1.2.3") == 0 && strlen(v.hash) == 64 && v.key_index == 1,
          v.version);
    expect("verify hash only", brickless_verify(signed_img, NULL, 0, &v), BRICKLESS_OK, NULL);
    check("verify hash only result", v.key_index == -1, "key_index");

    /* Bad images and keys. */
    expect("wrong key", brickless_verify(signed_img, both, 1, NULL), BRICKLESS_ERR_VERIFICATION, signed_img);
    check("truncate", truncate_copy(signed_img, truncated, 3000), "cannot write truncated.bin");
    expect("truncated verify", brickless_verify(truncated, &dev_key, 1, NULL), BRICKLESS_ERR_BAD_IMAGE, truncated);
    expect("truncated inspect", brickless_inspect(truncated, &json), BRICKLESS_ERR_BAD_IMAGE, truncated);
    const char *raw_as_key = raw;
    expect("not a key", brickless_verify(signed_img, &raw_as_key, 1, NULL), BRICKLESS_ERR_BAD_KEY, raw);
    expect("missing file", brickless_inspect(missing, &json), BRICKLESS_ERR_FILE, missing);
    BricklessSignOptions bad_version = so;
    bad_version.version = "1.x";
    expect("bad version", brickless_sign(raw, signed_img, dev_key, &bad_version),
           BRICKLESS_ERR_INVALID_ARGUMENT, "1.x");

    /* NULLs and bad strings. */
    expect("NULL input", brickless_sign(NULL, signed_img, NULL, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "input");
    expect("NULL output", brickless_sign(raw, NULL, NULL, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "output");
    expect("NULL image", brickless_verify(NULL, NULL, 0, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "image");
    expect("NULL keys", brickless_verify(signed_img, NULL, 2, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "keys");
    const char *with_null[2] = {dev_key, NULL};
    expect("NULL key", brickless_verify(signed_img, with_null, 2, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "keys[1]");
    expect("NULL json_out", brickless_inspect(signed_img, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "json_out");
    expect("not UTF-8", brickless_sign("\xff\xfe.bin", signed_img, NULL, NULL), BRICKLESS_ERR_INVALID_ARGUMENT,
           "`input` is not valid UTF-8");
    BricklessSmp *smp = NULL;
    expect("NULL target", brickless_smp_open(NULL, 5.0, &smp), BRICKLESS_ERR_INVALID_ARGUMENT, "target");
    expect("NULL out", brickless_smp_open(target, 5.0, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "out");
    expect("garbage target", brickless_smp_open("garbage", 5.0, &smp), BRICKLESS_ERR_INVALID_ARGUMENT, "garbage");
    const char *help = brickless_last_error_help();
    check("garbage target help", help && strstr(help, "udp:HOST"), help ? help : "NULL");
    expect("bad timeout", brickless_smp_open(target, -1.0, &smp), BRICKLESS_ERR_INVALID_ARGUMENT, "timeout");
    expect("missing port", brickless_smp_open("serial:/dev/does-not-exist", 5.0, &smp), BRICKLESS_ERR_CONNECTION,
           "/dev/does-not-exist");
    expect("NULL handle", brickless_smp_list(NULL, &json), BRICKLESS_ERR_INVALID_ARGUMENT, "handle");
    expect("NULL handle reset", brickless_smp_reset(NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "handle");
    brickless_smp_cancel(NULL);
    brickless_smp_close(NULL);
    brickless_string_free(NULL);
    brickless_cancel_free(NULL);

    /* ROM arguments, checked before any device is contacted. */
    expect("rom NULL target", brickless_rom_write(NULL, raw, NULL, NULL, NULL, NULL, NULL),
           BRICKLESS_ERR_INVALID_ARGUMENT, "target");
    expect("rom over udp", brickless_rom_write("udp:127.0.0.1:1", raw, NULL, NULL, NULL, NULL, NULL),
           BRICKLESS_ERR_INVALID_ARGUMENT, "UDP");
    expect("rom missing port", brickless_rom_write("serial:/dev/does-not-exist", raw, NULL, NULL, NULL, NULL, NULL),
           BRICKLESS_ERR_CONNECTION, "/dev/does-not-exist");
    BricklessCancel *token = brickless_cancel_new();
    brickless_cancel_set(token);
    expect("rom cancelled", brickless_rom_write("tcp:127.0.0.1:1", raw, NULL, NULL, NULL, token, NULL),
           BRICKLESS_ERR_CANCELLED, "cancelled");
    brickless_cancel_free(token);

    /* An SMP handle: argument checks, then an upload cancelled from another thread. */
    expect("open", brickless_smp_open(target, 5.0, &smp), BRICKLESS_OK, NULL);
    if (!smp)
        return 1;
    expect("NULL file", brickless_smp_upload(smp, NULL, NULL, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "file");
    expect("NULL hash", brickless_smp_test(smp, NULL), BRICKLESS_ERR_INVALID_ARGUMENT, "hash_hex");
    expect("bad hex", brickless_smp_test(smp, "xyz"), BRICKLESS_ERR_INVALID_ARGUMENT, "hash_hex");
    expect("short hash", brickless_smp_confirm(smp, "00ff"), BRICKLESS_ERR_INVALID_ARGUMENT, "00ff");
    expect("bad wait", brickless_smp_upgrade(smp, signed_img, true, -1.0, NULL, NULL, NULL),
           BRICKLESS_ERR_INVALID_ARGUMENT, "wait_s");
    expect("truncated upload", brickless_smp_upload(smp, truncated, NULL, NULL), BRICKLESS_ERR_BAD_IMAGE, truncated);

    struct cancel_ctx c = {.smp = smp, .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
    pthread_t t;
    if (pthread_create(&t, NULL, canceller, &c) != 0)
        return 1;
    int rc = brickless_smp_upload(smp, signed_img, cancel_progress, &c);
    pthread_join(t, NULL);
    expect("cancelled upload", rc, BRICKLESS_ERR_CANCELLED, "cancelled");
    check("cancelled mid-way", c.state == 2 && c.first_done < c.total, "the upload finished before the cancel");
    printf("cancelled after %llu of %llu bytes, %d reports\n", (unsigned long long)c.first_done,
           (unsigned long long)c.total, c.reports);
    /* The next call clears the flag: the handle works again. */
    json = NULL;
    expect("list after cancel", brickless_smp_list(smp, &json), BRICKLESS_OK, NULL);
    check("list json", json && json[0] == '[', json ? json : "NULL");
    brickless_string_free(json);

    /* The commands one by one: the blank device installs an upload at its reset. */
    expect("upload", brickless_smp_upload(smp, signed_img, NULL, NULL), BRICKLESS_OK, NULL);
    expect("reset", brickless_smp_reset(smp), BRICKLESS_OK, NULL);
    bool runs = false;
    for (int tries = 0; tries < 50 && !runs; tries++) {
        json = NULL;
        if (brickless_smp_list(smp, &json) == BRICKLESS_OK)
            runs = strstr(json, "\"version\":\"1.2.3\"") && strstr(json, "\"active\":true");
        brickless_string_free(json);
        if (!runs)
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    check("runs after reset", runs, "1.2.3 is not active");
    expect("confirm running", brickless_smp_confirm(smp, NULL), BRICKLESS_OK, NULL);
    expect("confirm by hash", brickless_smp_confirm(smp, v.hash), BRICKLESS_OK, NULL);
    expect("test unknown hash", brickless_smp_test(smp, "00000000000000000000000000000000"
                                                        "00000000000000000000000000000000"),
           BRICKLESS_ERR_REFUSED, "");
    brickless_smp_close(smp);

    free(raw);
    free(signed_img);
    free(truncated);
    free(missing);
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
