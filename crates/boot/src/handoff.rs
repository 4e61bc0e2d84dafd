//! The RAM mailbox shared by the bootloader and the application: 64 bytes (16 words) at the
//! top of RAM, at the linker symbol `_brickless_handoff`, left out of both programs' RAM so
//! neither's startup code clears it.
//!
//! This module is the codec only, over a `[u32; 16]`; reading and writing the real RAM
//! (volatile, word by word) is `brickless_app::mailbox`'s job. Every word is decoded so that
//! any content (RAM is random after power-on) gives a defined answer and never a panic.
//!
//! | word | written by | content |
//! |---|---|---|
//! | 0 | application | the request: [`REQUEST_RECOVERY`] asks the bootloader to stay in recovery at the next reset; anything else is [`Request::None`] |
//! | 1 | bootloader | the reset counter for double-reset detection: high half [`RESET_COUNT_MAGIC`], low half the count ([`reset_count`], [`reset_count_word`]) |
//! | 2 | bootloader | [`BOOT_INFO_MAGIC`] |
//! | 3, 4 | bootloader | bootloader version: `major \| minor << 8 \| revision << 16`, then `build` |
//! | 5, 6 | bootloader | version of the image started, same encoding |
//! | 7 | bootloader | absolute address of the slot started (its image header) |
//! | 8 | bootloader | bytes of the image started (header, payload, TLVs) |
//! | 9 | bootloader | flags: bit 0 trial, bits 1..8 zero, bits 8..16 [`BootEvent`] code, bits 16..24 [`ResetCause`] code, bits 24..32 zero |
//! | 10..=14 | bootloader | reserved, zero |
//! | 15 | bootloader | CRC-32 (ISO-HDLC, as zlib) of the little-endian bytes of words 2..=14 |
//!
//! Event codes: None 0, Installed 1, TrialStarted 2, Reverted 3, RevertImpossible 4. Reset
//! cause codes: PowerOn 0, Pin 1, Software 2, Watchdog 3, LowPower 4, Unknown 5. Words 2..=15
//! decode only when the magic, the CRC, every code and every reserved bit and word are as
//! [`BootInfo::encode`] writes them: a later format changes the magic.
use crate::state::CRC32;
use crate::{BootEvent, BootTarget, ImageVersion};

/// Words in the mailbox.
pub const HANDOFF_WORDS: usize = 16;
/// Bytes of RAM the mailbox takes at the top of RAM (the linker scripts shorten RAM by this).
pub const HANDOFF_BYTES: usize = HANDOFF_WORDS * 4;

/// Index of the request word (application → bootloader).
pub const REQUEST_WORD: usize = 0;
/// Index of the reset counter word (bootloader only).
pub const RESET_COUNT_WORD: usize = 1;
/// Index of the first boot-info word ([`BOOT_INFO_MAGIC`]); the info runs to the last word.
pub const BOOT_INFO_FIRST_WORD: usize = 2;

/// The request word's value asking for recovery ("B1C0 5EC0": brickless, recovery).
pub const REQUEST_RECOVERY: u32 = 0xB1C0_5EC0;
/// High half of the reset counter word when it holds a count.
pub const RESET_COUNT_MAGIC: u16 = 0xB1C1;
/// First word of a boot info of this format ("B1C2": brickless boot info, format 1).
pub const BOOT_INFO_MAGIC: u32 = 0xB1C2_0001;

const CRC_WORD: usize = HANDOFF_WORDS - 1;
const FLAG_TRIAL: u32 = 1;
/// Flag bits that must be zero: 1..8 and 24..32.
const FLAGS_RESERVED: u32 = 0xFF00_00FE;

/// What the application asks of the bootloader for the next reset (word 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Nothing: boot as usual. Any word but [`REQUEST_RECOVERY`] reads as this.
    None,
    /// Stay in the bootloader's recovery mode (written as [`REQUEST_RECOVERY`]).
    Recovery,
}

/// The request in `words` (word 0).
pub fn request(words: &[u32; HANDOFF_WORDS]) -> Request {
    if words[REQUEST_WORD] == REQUEST_RECOVERY {
        Request::Recovery
    } else {
        Request::None
    }
}

/// Writes the request word: [`REQUEST_RECOVERY`] or 0.
pub fn set_request(words: &mut [u32; HANDOFF_WORDS], request: Request) {
    words[REQUEST_WORD] = match request {
        Request::None => 0,
        Request::Recovery => REQUEST_RECOVERY,
    };
}

/// The count held by a reset counter word; 0 when its high half is not [`RESET_COUNT_MAGIC`]
/// (RAM after power-on, or a word never written).
pub fn reset_count(word: u32) -> u16 {
    if (word >> 16) as u16 == RESET_COUNT_MAGIC {
        word as u16
    } else {
        0
    }
}

/// The reset counter word holding `count`.
pub fn reset_count_word(count: u16) -> u32 {
    (u32::from(RESET_COUNT_MAGIC) << 16) | u32::from(count)
}

/// Why the chip last reset, as the bootloader read it from the reset controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// Power-on or brown-out.
    PowerOn,
    /// The reset pin (the reset button, or a debugger).
    Pin,
    /// A software reset (`SYSRESETREQ`), e.g. the application restarting after an update.
    Software,
    /// An independent or window watchdog.
    Watchdog,
    /// A low-power mode reset (standby or stop exit by reset, illegal low-power entry).
    LowPower,
    /// No flag, several, or one this list does not name.
    Unknown,
}

impl ResetCause {
    fn code(self) -> u8 {
        match self {
            ResetCause::PowerOn => 0,
            ResetCause::Pin => 1,
            ResetCause::Software => 2,
            ResetCause::Watchdog => 3,
            ResetCause::LowPower => 4,
            ResetCause::Unknown => 5,
        }
    }

    fn from_code(c: u8) -> Option<ResetCause> {
        Some(match c {
            0 => ResetCause::PowerOn,
            1 => ResetCause::Pin,
            2 => ResetCause::Software,
            3 => ResetCause::Watchdog,
            4 => ResetCause::LowPower,
            5 => ResetCause::Unknown,
            _ => return None,
        })
    }
}

fn event_code(e: BootEvent) -> u8 {
    match e {
        BootEvent::None => 0,
        BootEvent::Installed => 1,
        BootEvent::TrialStarted => 2,
        BootEvent::Reverted => 3,
        BootEvent::RevertImpossible => 4,
    }
}

fn event_from_code(c: u8) -> Option<BootEvent> {
    Some(match c {
        0 => BootEvent::None,
        1 => BootEvent::Installed,
        2 => BootEvent::TrialStarted,
        3 => BootEvent::Reverted,
        4 => BootEvent::RevertImpossible,
        _ => return None,
    })
}

fn version_words(v: ImageVersion) -> [u32; 2] {
    [
        u32::from(v.major) | (u32::from(v.minor) << 8) | (u32::from(v.revision) << 16),
        v.build,
    ]
}

fn version_from_words(a: u32, build: u32) -> ImageVersion {
    ImageVersion::new(a as u8, (a >> 8) as u8, (a >> 16) as u16, build)
}

fn crc(info: &[u32]) -> u32 {
    let mut d = CRC32.digest();
    for w in info {
        d.update(&w.to_le_bytes());
    }
    d.finalize()
}

/// What the bootloader tells the application about the boot that started it (words 2..=15),
/// written at every boot that starts an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// The bootloader's own version.
    pub bootloader_version: ImageVersion,
    /// The version in the header of the image started.
    pub image_version: ImageVersion,
    /// Absolute address of the slot started (where its image header is).
    pub slot: u32,
    /// Bytes of the image started (header, payload, TLVs).
    pub image_size: u32,
    /// A trial boot: the image must confirm itself, or the next reset reverts it.
    pub trial: bool,
    /// What the boot did before starting the image.
    pub event: BootEvent,
    /// Why the chip reset.
    pub reset_cause: ResetCause,
}

impl BootInfo {
    /// The info for the image a [`crate::BootLoader::boot`] decision starts.
    pub fn new(
        bootloader_version: ImageVersion,
        target: &BootTarget,
        reset_cause: ResetCause,
    ) -> BootInfo {
        BootInfo {
            bootloader_version,
            image_version: target.image.version,
            slot: target.address,
            image_size: target.image.size,
            trial: target.trial,
            event: target.event,
            reset_cause,
        }
    }

    /// Writes words 2..=15 (magic, fields, CRC); words 0 and 1 are left alone.
    pub fn encode(&self, words: &mut [u32; HANDOFF_WORDS]) {
        let [bl_a, bl_b] = version_words(self.bootloader_version);
        let [im_a, im_b] = version_words(self.image_version);
        let flags = u32::from(self.trial)
            | (u32::from(event_code(self.event)) << 8)
            | (u32::from(self.reset_cause.code()) << 16);
        let info = &mut words[BOOT_INFO_FIRST_WORD..CRC_WORD];
        info.fill(0);
        info[..8].copy_from_slice(&[
            BOOT_INFO_MAGIC,
            bl_a,
            bl_b,
            im_a,
            im_b,
            self.slot,
            self.image_size,
            flags,
        ]);
        words[CRC_WORD] = crc(&words[BOOT_INFO_FIRST_WORD..CRC_WORD]);
    }

    /// Reads words 2..=15: `None` unless they hold exactly what [`BootInfo::encode`] writes
    /// (magic, CRC, known codes, zero reserved bits and words). Never panics.
    pub fn decode(words: &[u32; HANDOFF_WORDS]) -> Option<BootInfo> {
        let info = &words[BOOT_INFO_FIRST_WORD..CRC_WORD];
        if info[0] != BOOT_INFO_MAGIC || words[CRC_WORD] != crc(info) {
            return None;
        }
        let flags = info[7];
        if flags & FLAGS_RESERVED != 0 || info[8..].iter().any(|&w| w != 0) {
            return None;
        }
        Some(BootInfo {
            bootloader_version: version_from_words(info[1], info[2]),
            image_version: version_from_words(info[3], info[4]),
            slot: info[5],
            image_size: info[6],
            trial: flags & FLAG_TRIAL != 0,
            event: event_from_code((flags >> 8) as u8)?,
            reset_cause: ResetCause::from_code((flags >> 16) as u8)?,
        })
    }

    /// Invalidates the info (zeroes words 2..=15), e.g. before the bootloader stays in
    /// recovery; words 0 and 1 are left alone.
    pub fn clear(words: &mut [u32; HANDOFF_WORDS]) {
        words[BOOT_INFO_FIRST_WORD..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mailbox_is_sixteen_words_the_linker_scripts_reserve_64_bytes_for() {
        assert_eq!(HANDOFF_BYTES, 64);
        assert_eq!(HANDOFF_BYTES, core::mem::size_of::<[u32; HANDOFF_WORDS]>());
    }
    use proptest::prelude::*;

    fn sample() -> BootInfo {
        BootInfo {
            bootloader_version: ImageVersion::new(0, 1, 2, 3),
            image_version: ImageVersion::new(250, 7, 65_000, 0xDEAD_BEEF),
            slot: 0x0802_0000,
            image_size: 123_457,
            trial: true,
            event: BootEvent::TrialStarted,
            reset_cause: ResetCause::Watchdog,
        }
    }

    const EVENTS: [BootEvent; 5] = [
        BootEvent::None,
        BootEvent::Installed,
        BootEvent::TrialStarted,
        BootEvent::Reverted,
        BootEvent::RevertImpossible,
    ];
    const CAUSES: [ResetCause; 6] = [
        ResetCause::PowerOn,
        ResetCause::Pin,
        ResetCause::Software,
        ResetCause::Watchdog,
        ResetCause::LowPower,
        ResetCause::Unknown,
    ];

    #[test]
    fn boot_info_round_trips_and_leaves_words_0_and_1() {
        for event in EVENTS {
            for reset_cause in CAUSES {
                for trial in [false, true] {
                    let info = BootInfo {
                        event,
                        reset_cause,
                        trial,
                        ..sample()
                    };
                    let mut words = [0x5555_5555u32; HANDOFF_WORDS];
                    info.encode(&mut words);
                    assert_eq!(words[0], 0x5555_5555);
                    assert_eq!(words[1], 0x5555_5555);
                    assert_eq!(words[2], BOOT_INFO_MAGIC);
                    assert_eq!(BootInfo::decode(&words), Some(info));
                }
            }
        }
    }

    #[test]
    fn boot_info_from_a_boot_target() {
        let target = BootTarget {
            address: 0x0800_8000,
            image: crate::ImageInfo {
                version: ImageVersion::new(1, 2, 3, 4),
                security_counter: 9,
                size: 4096,
                hash: [1; 32],
                exec: crate::Exec::InPlace,
            },
            trial: false,
            event: BootEvent::Reverted,
        };
        let info = BootInfo::new(ImageVersion::new(0, 1, 0, 0), &target, ResetCause::Pin);
        assert_eq!(info.slot, 0x0800_8000);
        assert_eq!(info.image_version, ImageVersion::new(1, 2, 3, 4));
        assert_eq!(info.image_size, 4096);
        assert!(!info.trial);
        assert_eq!(info.event, BootEvent::Reverted);
        let mut words = [0; HANDOFF_WORDS];
        info.encode(&mut words);
        assert_eq!(BootInfo::decode(&words), Some(info));
        BootInfo::clear(&mut words);
        assert_eq!(BootInfo::decode(&words), None);
    }

    #[test]
    fn every_single_bit_flip_of_the_info_is_rejected() {
        let mut words = [0; HANDOFF_WORDS];
        sample().encode(&mut words);
        for w in BOOT_INFO_FIRST_WORD..HANDOFF_WORDS {
            for bit in 0..32 {
                let mut bad = words;
                bad[w] ^= 1 << bit;
                assert_eq!(BootInfo::decode(&bad), None, "word {w} bit {bit}");
            }
        }
        // Words 0 and 1 are not part of the info.
        let mut other = words;
        other[0] ^= 1;
        other[1] ^= 1 << 31;
        assert_eq!(BootInfo::decode(&other), Some(sample()));
    }

    #[test]
    fn a_correct_crc_over_unknown_codes_or_reserved_bits_is_rejected() {
        let mut words = [0; HANDOFF_WORDS];
        sample().encode(&mut words);
        let reseal = |mut w: [u32; HANDOFF_WORDS]| {
            w[CRC_WORD] = crc(&w[BOOT_INFO_FIRST_WORD..CRC_WORD]);
            w
        };
        assert_eq!(BootInfo::decode(&reseal(words)), Some(sample()));
        for (word, value) in [
            (9, 1 | (5 << 8)), // event 5
            (9, 6 << 16),      // reset cause 6
            (9, 1 << 1),       // reserved flag bit
            (9, 1 << 24),      // reserved flag bit
            (10, 1),           // reserved word
            (14, 0x8000_0000), // reserved word
            (2, BOOT_INFO_MAGIC + 1),
        ] {
            let mut bad = words;
            bad[word] = value;
            assert_eq!(
                BootInfo::decode(&reseal(bad)),
                None,
                "word {word} = {value:#x}"
            );
        }
    }

    #[test]
    fn erased_and_zeroed_ram_hold_no_info_and_no_request() {
        for fill in [0u32, u32::MAX, 0xAAAA_AAAA] {
            let words = [fill; HANDOFF_WORDS];
            assert_eq!(BootInfo::decode(&words), None);
            assert_eq!(request(&words), Request::None);
            assert_eq!(reset_count(words[RESET_COUNT_WORD]), 0);
        }
    }

    #[test]
    fn request_word() {
        let mut words = [0x1234_5678; HANDOFF_WORDS];
        assert_eq!(request(&words), Request::None);
        set_request(&mut words, Request::Recovery);
        assert_eq!(words[REQUEST_WORD], REQUEST_RECOVERY);
        assert_eq!(request(&words), Request::Recovery);
        assert_eq!(&words[1..], &[0x1234_5678; HANDOFF_WORDS - 1]);
        set_request(&mut words, Request::None);
        assert_eq!(words[REQUEST_WORD], 0);
        assert_eq!(request(&words), Request::None);
        words[REQUEST_WORD] = REQUEST_RECOVERY ^ 1;
        assert_eq!(request(&words), Request::None);
    }

    #[test]
    fn reset_counter_word() {
        assert_eq!(reset_count_word(0), 0xB1C1_0000);
        assert_eq!(reset_count_word(2), 0xB1C1_0002);
        for n in [0, 1, 2, 0x7FFF, u16::MAX] {
            assert_eq!(reset_count(reset_count_word(n)), n);
        }
        assert_eq!(reset_count(0xB1C0_0003), 0);
        assert_eq!(reset_count(0x0000_0003), 0);
        assert_eq!(reset_count(0xFFFF_FFFF), 0);
    }

    proptest! {
        #[test]
        fn random_words_never_decode(words in prop::array::uniform16(any::<u32>())) {
            // The magic alone is a 1 in 2^32 chance; the CRC another.
            prop_assert_eq!(BootInfo::decode(&words), None);
        }

        #[test]
        fn random_words_under_the_magic_never_decode(
            mut words in prop::array::uniform16(any::<u32>())
        ) {
            words[BOOT_INFO_FIRST_WORD] = BOOT_INFO_MAGIC;
            prop_assert_eq!(BootInfo::decode(&words), None);
        }

        #[test]
        fn whatever_decodes_encodes_back_to_the_same_words(
            mut words in prop::array::uniform16(any::<u32>()),
            sealed in any::<bool>(),
        ) {
            // Mostly well-formed: reserved words zero, codes in 0..8 (some unknown), sealed.
            words[BOOT_INFO_FIRST_WORD] = BOOT_INFO_MAGIC;
            words[9] &= 0x0007_0701;
            words[10..CRC_WORD].fill(0);
            if sealed {
                words[CRC_WORD] = crc(&words[BOOT_INFO_FIRST_WORD..CRC_WORD]);
            }
            if let Some(info) = BootInfo::decode(&words) {
                let mut again = words;
                info.encode(&mut again);
                prop_assert_eq!(again, words);
            }
        }

        #[test]
        fn any_info_round_trips(
            bl in any::<(u8, u8, u16, u32)>(),
            im in any::<(u8, u8, u16, u32)>(),
            slot in any::<u32>(),
            image_size in any::<u32>(),
            trial in any::<bool>(),
            event in 0usize..5,
            cause in 0usize..6,
        ) {
            let info = BootInfo {
                bootloader_version: ImageVersion::new(bl.0, bl.1, bl.2, bl.3),
                image_version: ImageVersion::new(im.0, im.1, im.2, im.3),
                slot,
                image_size,
                trial,
                event: EVENTS[event],
                reset_cause: CAUSES[cause],
            };
            let mut words = [0; HANDOFF_WORDS];
            info.encode(&mut words);
            prop_assert_eq!(BootInfo::decode(&words), Some(info));
        }
    }
}
