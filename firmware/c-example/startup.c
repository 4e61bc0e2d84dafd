/* Minimal Cortex-M startup for the C example: the vector table the brickless bootloader
 * points VTOR at (right after the image header), .data copied, .bss zeroed, then main(). */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;)
        *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    main();
    for (;;) {
    }
}

static void Default_Handler(void)
{
    for (;;) {
    }
}

/* Initial stack pointer, reset, then the 14 other system exceptions. */
__attribute__((section(".isr_vector"), used))
const void *const vector_table[16] = {
    &_estack,         Reset_Handler,   Default_Handler, Default_Handler,
    Default_Handler,  Default_Handler, Default_Handler, 0,
    0,                0,               0,               Default_Handler,
    Default_Handler,  0,               Default_Handler, Default_Handler,
};
