/* The C example application for the B-L475E-IOT01A: prints the boot info it reads through
 * the brickless-app C library on USART1 (the ST-LINK virtual COM port). */
#include <stdint.h>
#include <stdio.h>
#include "brickless_app.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define RCC_AHB2ENR REG(0x4002104Cu)
#define RCC_APB2ENR REG(0x40021060u)
#define GPIOB_MODER REG(0x48000400u)
#define GPIOB_AFRL REG(0x48000420u)
#define USART1_CR1 REG(0x40013800u)
#define USART1_BRR REG(0x4001380Cu)
#define USART1_ISR REG(0x4001381Cu)
#define USART1_TDR REG(0x40013828u)

/* USART1 on PB6 (TX) / PB7 (RX), AF7, 115200 baud from MSI 4 MHz (the reset clock).
 * Every access is 32 bits wide: QEMU's L4 USART model faults on byte accesses. */
static void console_init(void)
{
    RCC_AHB2ENR |= 1u << 1;  /* GPIOB */
    RCC_APB2ENR |= 1u << 14; /* USART1 */
    GPIOB_MODER = (GPIOB_MODER & ~(0xFu << 12)) | (0xAu << 12);
    GPIOB_AFRL = (GPIOB_AFRL & ~(0xFFu << 24)) | (0x77u << 24);
    USART1_BRR = 4000000u / 115200u;
    USART1_CR1 = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
}

static void put(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n') {
            while (!(USART1_ISR & (1u << 7))) {
            }
            USART1_TDR = '\r';
        }
        while (!(USART1_ISR & (1u << 7))) {
        }
        USART1_TDR = (uint32_t)(unsigned char)*s;
    }
}

static const char *event_name(BricklessBootEvent e)
{
    switch (e) {
    case BRICKLESS_BOOT_EVENT_NONE: return "none";
    case BRICKLESS_BOOT_EVENT_INSTALLED: return "installed";
    case BRICKLESS_BOOT_EVENT_TRIAL_STARTED: return "trial started";
    case BRICKLESS_BOOT_EVENT_REVERTED: return "reverted";
    case BRICKLESS_BOOT_EVENT_REVERT_IMPOSSIBLE: return "revert impossible";
    }
    return "?";
}

int main(void)
{
    char line[160];
    BricklessBootInfo info;
    console_init();
    put("c-app: hello from the C example application\n");
    BricklessStatus st = brickless_boot_info(&info);
    if (st != BRICKLESS_STATUS_OK) {
        snprintf(line, sizeof line, "c-app: no boot info: %s\n", brickless_status_text(st));
        put(line);
    } else {
        snprintf(line, sizeof line,
                 "c-app: boot info: image %u.%u.%u+%lu at 0x%08lx, trial %s, event %s, bootloader %u.%u.%u\n",
                 info.image_version.major, info.image_version.minor, info.image_version.revision,
                 (unsigned long)info.image_version.build, (unsigned long)info.slot,
                 info.trial ? "yes" : "no", event_name(info.event), info.bootloader_version.major,
                 info.bootloader_version.minor, info.bootloader_version.revision);
        put(line);
    }
    /* A null pointer comes back as an error value, never a crash. */
    st = brickless_boot_info(0);
    snprintf(line, sizeof line, "c-app: null argument: %s\n", brickless_status_text(st));
    put(line);
    for (;;) {
    }
}
