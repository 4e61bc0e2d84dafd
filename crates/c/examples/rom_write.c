/* rom_write: program a firmware file through an STM32's ROM bootloader (BOOT0 high).
 *
 *   rom_write [--no-parity] [--address ADDR] TARGET FILE
 *
 * TARGET is serial:PATH[@BAUD] (a USB-UART on the chip's USART1) or tcp:HOST:PORT (ser2net,
 * `brickless sim --rom --tcp`). FILE is BIN (written at ADDR, default the start of flash),
 * Intel HEX, ELF or DfuSe .dfu. Ctrl-C is not handled here: see brickless_cancel_set for
 * stopping a write from another thread.
 *
 * Build: cc -Iinclude rom_write.c -Ltarget/debug -lbrickless_c -o rom_write */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brickless.h"

static void on_progress(BricklessRomPhase phase, uint64_t done, uint64_t total, void *user) {
    int *last = user;
    if (done != total || (int)phase == *last)
        return; /* one line per phase, when it ends */
    *last = (int)phase;
    const char *what = phase == BRICKLESS_ROM_PHASE_ERASE   ? "erased"
                       : phase == BRICKLESS_ROM_PHASE_WRITE ? "written"
                                                            : "verified";
    printf("%s %llu of %llu %s\n", what, (unsigned long long)done, (unsigned long long)total,
           phase == BRICKLESS_ROM_PHASE_ERASE ? "pages" : "bytes");
}

int main(int argc, char **argv) {
    BricklessRomOptions opts = brickless_rom_options_default();
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--no-parity") == 0) {
            opts.parity_even = false;
        } else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
            opts.has_address = true;
            opts.address = (uint32_t)strtoul(argv[++i], NULL, 0);
        } else {
            break;
        }
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: rom_write [--no-parity] [--address ADDR] TARGET FILE\n");
        return 2;
    }
    int last = -1;
    BricklessRomReport report;
    int rc = brickless_rom_write(argv[i], argv[i + 1], &opts, on_progress, &last, NULL, &report);
    if (rc != BRICKLESS_OK) {
        fprintf(stderr, "error (%s): %s\n", brickless_error_name(rc), brickless_last_error_message());
        const char *help = brickless_last_error_help();
        if (help)
            fprintf(stderr, "  help: %s\n", help);
        return 1;
    }
    printf("wrote %llu bytes in %llu segments to %s%s\n", (unsigned long long)report.bytes,
           (unsigned long long)report.segments, report.device,
           report.verified ? ", verified" : "");
    return 0;
}
