//! The ROM bootloader device table: what a host needs to know about a part once Get ID has
//! returned its product ID (PID).
//!
//! Facts come from ST AN2606 (memory map, I2C addresses, bootloader errata) as collected by
//! stm32flash's device table and stm32loader's. Flash sizes are the family maximum: read the
//! real size from [`RomDevice::flash_size_addr`] (KiB, little-endian u16).
//!
//! This table holds ROM facts only. The flash layout and timings come from `brickless-flash`'s
//! part table (the family's largest part in its default bank mode), the same [`Geometry`] the
//! flash model and the update engine use, so the page numbers a host sends in Erase are the
//! model's sector indices.

use brickless_flash::{part_named, Geometry, Sector};

/// A half-open address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRange {
    /// First address in the range (absolute).
    pub start: u32,
    /// First address past the range (absolute).
    pub end: u32,
}

impl MemRange {
    /// The range `[start, end)`.
    pub const fn new(start: u32, end: u32) -> Self {
        Self { start, end }
    }

    /// Size in bytes (0 when `end` is not above `start`).
    pub const fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// True when the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True when `[addr, addr + len)` lies fully inside the range.
    pub fn contains_span(&self, addr: u32, len: u32) -> bool {
        addr >= self.start && u64::from(addr) + u64::from(len) <= u64::from(self.end)
    }
}

bitflags::bitflags! {
    /// Bootloader quirks (stm32flash's `F_*` flags plus AN2606 errata that change what a host
    /// must send).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct Quirks: u16 {
        /// No mass erase: erase page by page (all L0/L1; stm32flash `F_NO_ME`).
        const NO_MASS_ERASE = 1 << 0;
        /// A reset needs FLASH_CR.OBL_LAUNCH (stm32flash `F_OBLL`, F030xC/F09x).
        const OBL_LAUNCH = 1 << 1;
        /// A freshly programmed chip needs PEMPTY toggled to boot from flash (`F_PEMPTY`, L45x/46x).
        const PEMPTY = 1 << 2;
        /// Some bootloader versions do not send the first ACK of Go (H74x V9.0).
        const GO_FIRST_ACK_MAY_BE_MISSING = 1 << 3;
        /// Sync may be answered with two ACKs (L412/422 V13.1).
        const DOUBLE_ACK_ON_SYNC = 1 << 4;
        /// Multi-page erase is unreliable: erase one page per command (G07x/08x V11.3).
        const ERASE_ONE_PAGE_PER_COMMAND = 1 << 5;
        /// Bank erase (0xFFFE/0xFFFD) does not work on some versions (H74x V13.3): erase sectors.
        const NO_BANK_ERASE = 1 << 6;
    }
}

/// One product ID's bootloader-visible properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RomDevice {
    /// Product ID as returned by Get ID (DBGMCU_IDCODE.DEV_ID).
    pub pid: u16,
    /// Human name, e.g. `STM32H74x/H75x`.
    pub name: &'static str,
    /// Lower-case part-name prefixes this PID covers (`stm32h743`, …): maps `--part` to a PID.
    pub part_prefixes: &'static [&'static str],
    /// The family-maximum flash layout, taken from `brickless-flash`'s part table (the one
    /// place geometry and timings live); erase page numbers index `geometry.sectors()` in order.
    pub geometry: &'static Geometry,
    /// RAM the bootloader leaves to the host (for RAM stubs); below `start` is the ROM's own.
    pub ram: MemRange,
    /// System memory (the ROM bootloader itself).
    pub system_memory: MemRange,
    /// Option bytes as mapped for Read/Write Memory, if the bootloader maps them.
    pub option_bytes: Option<MemRange>,
    /// Flash size register: a little-endian u16 in KiB.
    pub flash_size_addr: u32,
    /// 96-bit unique device ID.
    pub uid_addr: u32,
    /// Bootloader ID byte (AN2606) of the common version, e.g. 0x91 for V9.1.
    pub bootloader_id: u8,
    /// AN3155 protocol version byte returned by Get on USART.
    pub usart_protocol_version: u8,
    /// 7-bit I2C address of the ROM bootloader, where AN2606 gives one.
    pub i2c_address: Option<u8>,
    /// Largest page list one Erase command may carry (stm32flash: at most 511 everywhere).
    pub max_erase_pages: u16,
    /// Bootloader bugs and limits a host must work around.
    pub quirks: Quirks,
}

impl RomDevice {
    /// Flash program unit in bytes: writes are padded to this with the erased value.
    pub fn write_unit(&self) -> u32 {
        self.geometry.write_unit
    }

    /// The erase page (sector) index as the bootloader numbers it (global, across banks).
    pub fn page_index(&self, addr: u32) -> Option<u16> {
        self.geometry
            .sectors()
            .position(|s| addr >= s.addr && addr - s.addr < s.size)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// The sector with global page number `index`.
    pub fn page(&self, index: u16) -> Option<Sector> {
        self.geometry.sectors().nth(usize::from(index))
    }

    /// Number of erase pages in the family-maximum layout.
    pub fn page_count(&self) -> u16 {
        u16::try_from(self.geometry.sectors().count()).unwrap_or(u16::MAX)
    }

    /// The flash range of the family-maximum layout (banks may have a hole between them).
    pub fn flash(&self) -> MemRange {
        MemRange::new(self.geometry.base(), self.geometry.end())
    }

    /// True for a part with two banks (bank erase is available).
    pub fn dual_bank(&self) -> bool {
        self.geometry.banks.len() > 1
    }

    /// True when `name` (case-insensitive) starts with one of this device's part prefixes.
    pub fn matches_part(&self, name: &str) -> bool {
        self.part_prefixes.iter().any(|p| {
            name.len() >= p.len()
                && name.is_char_boundary(p.len())
                && name[..p.len()].eq_ignore_ascii_case(p)
        })
    }
}

/// Looks a device up by the product ID that Get ID returns.
pub fn by_pid(pid: u16) -> Option<&'static RomDevice> {
    DEVICES.iter().find(|d| d.pid == pid)
}

/// Looks a device up by part name (`stm32h753zi`, `STM32L475VG`, …) or by `0x450`-style PID.
pub fn by_part_name(name: &str) -> Option<&'static RomDevice> {
    let hex = name.strip_prefix("0x").or_else(|| name.strip_prefix("0X"));
    if let Some(pid) = hex.and_then(|h| u16::from_str_radix(h, 16).ok()) {
        return by_pid(pid);
    }
    DEVICES.iter().find(|d| d.matches_part(name))
}

const H7_FLASH_SIZE: u32 = 0x1FF1_E880;
const H7_UID: u32 = 0x1FF1_E800;
const F4_FLASH_SIZE: u32 = 0x1FFF_7A22;
const F4_UID: u32 = 0x1FFF_7A10;
const L4_FLASH_SIZE: u32 = 0x1FFF_75E0;
const L4_UID: u32 = 0x1FFF_7590;
const L0_FLASH_SIZE: u32 = 0x1FF8_007C;
const L0_UID: u32 = 0x1FF8_0050;
const U5_FLASH_SIZE: u32 = 0x0BFA_07A0;
const U5_UID: u32 = 0x0BFA_0700;

/// Every product ID brickless knows, in PID order.
pub static DEVICES: &[RomDevice] = &[
    RomDevice {
        pid: 0x413,
        name: "STM32F40x/F41x",
        part_prefixes: &["stm32f405", "stm32f407", "stm32f415", "stm32f417"],
        geometry: &part_named("stm32f407vg").geometry,
        ram: MemRange::new(0x2000_3000, 0x2002_0000),
        system_memory: MemRange::new(0x1FFF_0000, 0x1FFF_7800),
        option_bytes: Some(MemRange::new(0x1FFF_C000, 0x1FFF_C010)),
        flash_size_addr: F4_FLASH_SIZE,
        uid_addr: F4_UID,
        bootloader_id: 0x31,
        usart_protocol_version: 0x31,
        i2c_address: None,
        max_erase_pages: 511,
        quirks: Quirks::empty(),
    },
    RomDevice {
        pid: 0x415,
        name: "STM32L47x/L48x",
        part_prefixes: &["stm32l471", "stm32l475", "stm32l476", "stm32l486"],
        geometry: &part_named("stm32l475vg").geometry,
        ram: MemRange::new(0x2000_3100, 0x2001_8000),
        system_memory: MemRange::new(0x1FFF_0000, 0x1FFF_7000),
        option_bytes: Some(MemRange::new(0x1FFF_7800, 0x1FFF_F810)),
        flash_size_addr: L4_FLASH_SIZE,
        uid_addr: L4_UID,
        bootloader_id: 0xA3,
        usart_protocol_version: 0x31,
        i2c_address: None,
        max_erase_pages: 511,
        quirks: Quirks::empty(),
    },
    RomDevice {
        pid: 0x419,
        name: "STM32F42x/F43x",
        part_prefixes: &["stm32f427", "stm32f429", "stm32f437", "stm32f439"],
        geometry: &part_named("stm32f429zi").geometry,
        ram: MemRange::new(0x2000_3000, 0x2003_0000),
        system_memory: MemRange::new(0x1FFF_0000, 0x1FFF_7800),
        option_bytes: Some(MemRange::new(0x1FFE_C000, 0x1FFF_C010)),
        flash_size_addr: F4_FLASH_SIZE,
        uid_addr: F4_UID,
        bootloader_id: 0x70,
        usart_protocol_version: 0x31,
        i2c_address: None,
        max_erase_pages: 511,
        quirks: Quirks::empty(),
    },
    RomDevice {
        pid: 0x447,
        name: "STM32L07x/L08x",
        part_prefixes: &[
            "stm32l071",
            "stm32l072",
            "stm32l073",
            "stm32l081",
            "stm32l082",
            "stm32l083",
        ],
        geometry: &part_named("stm32l073rz").geometry,
        ram: MemRange::new(0x2000_2000, 0x2000_5000),
        system_memory: MemRange::new(0x1FF0_0000, 0x1FF0_2000),
        option_bytes: Some(MemRange::new(0x1FF8_0000, 0x1FF8_0020)),
        flash_size_addr: L0_FLASH_SIZE,
        uid_addr: L0_UID,
        bootloader_id: 0xB2,
        usart_protocol_version: 0x31,
        i2c_address: None,
        // "even 511 for STM32L082" (stm32flash).
        max_erase_pages: 511,
        quirks: Quirks::NO_MASS_ERASE,
    },
    RomDevice {
        pid: 0x450,
        name: "STM32H74x/H75x",
        part_prefixes: &[
            "stm32h742",
            "stm32h743",
            "stm32h745",
            "stm32h747",
            "stm32h750",
            "stm32h753",
            "stm32h755",
            "stm32h757",
        ],
        geometry: &part_named("stm32h753zi").geometry,
        ram: MemRange::new(0x2000_4100, 0x2002_0000),
        system_memory: MemRange::new(0x1FF0_0000, 0x1FF1_E800),
        option_bytes: None,
        flash_size_addr: H7_FLASH_SIZE,
        uid_addr: H7_UID,
        bootloader_id: 0x91,
        usart_protocol_version: 0x31,
        i2c_address: Some(0x4E),
        max_erase_pages: 511,
        quirks: Quirks::GO_FIRST_ACK_MAY_BE_MISSING,
    },
    RomDevice {
        pid: 0x460,
        name: "STM32G07x/G08x",
        part_prefixes: &["stm32g070", "stm32g071", "stm32g081"],
        geometry: &part_named("stm32g071rb").geometry,
        ram: MemRange::new(0x2000_2700, 0x2000_9000),
        system_memory: MemRange::new(0x1FFF_0000, 0x1FFF_7000),
        option_bytes: Some(MemRange::new(0x1FFF_7800, 0x1FFF_7880)),
        flash_size_addr: L4_FLASH_SIZE,
        uid_addr: L4_UID,
        bootloader_id: 0xB3,
        usart_protocol_version: 0x31,
        i2c_address: Some(0x51),
        max_erase_pages: 511,
        quirks: Quirks::ERASE_ONE_PAGE_PER_COMMAND,
    },
    RomDevice {
        pid: 0x469,
        name: "STM32G47x/G48x",
        part_prefixes: &[
            "stm32g471",
            "stm32g473",
            "stm32g474",
            "stm32g483",
            "stm32g484",
        ],
        geometry: &part_named("stm32g474re").geometry,
        ram: MemRange::new(0x2000_4000, 0x2001_8000),
        system_memory: MemRange::new(0x1FFF_0000, 0x1FFF_7000),
        option_bytes: Some(MemRange::new(0x1FFF_7800, 0x1FFF_7830)),
        flash_size_addr: L4_FLASH_SIZE,
        uid_addr: L4_UID,
        bootloader_id: 0xD5,
        usart_protocol_version: 0x31,
        i2c_address: Some(0x53),
        max_erase_pages: 511,
        quirks: Quirks::empty(),
    },
    RomDevice {
        pid: 0x480,
        name: "STM32H7A3/H7B3/H7B0",
        part_prefixes: &["stm32h7a3", "stm32h7b3", "stm32h7b0"],
        geometry: &part_named("stm32h7a3zi").geometry,
        ram: MemRange::new(0x2000_4100, 0x2002_0000),
        system_memory: MemRange::new(0x1FF0_0000, 0x1FF1_4000),
        option_bytes: None,
        flash_size_addr: H7_FLASH_SIZE,
        uid_addr: H7_UID,
        bootloader_id: 0x92,
        usart_protocol_version: 0x31,
        // AN2606 prints an 8-bit typo; 0x57 is the accepted 7-bit address.
        i2c_address: Some(0x57),
        max_erase_pages: 511,
        quirks: Quirks::empty(),
    },
    RomDevice {
        pid: 0x482,
        name: "STM32U575/U585",
        part_prefixes: &["stm32u575", "stm32u585"],
        geometry: &part_named("stm32u585ai").geometry,
        ram: MemRange::new(0x2000_4000, 0x200C_0000),
        system_memory: MemRange::new(0x0BF9_0000, 0x0BFA_0000),
        option_bytes: None,
        flash_size_addr: U5_FLASH_SIZE,
        uid_addr: U5_UID,
        bootloader_id: 0x92,
        usart_protocol_version: 0x31,
        i2c_address: None,
        max_erase_pages: 511,
        quirks: Quirks::empty(),
    },
    RomDevice {
        pid: 0x483,
        name: "STM32H72x/H73x",
        part_prefixes: &[
            "stm32h723",
            "stm32h725",
            "stm32h730",
            "stm32h733",
            "stm32h735",
        ],
        geometry: &part_named("stm32h723zg").geometry,
        ram: MemRange::new(0x2000_4100, 0x2002_0000),
        system_memory: MemRange::new(0x1FF0_0000, 0x1FF1_E800),
        option_bytes: None,
        flash_size_addr: H7_FLASH_SIZE,
        uid_addr: H7_UID,
        bootloader_id: 0x93,
        usart_protocol_version: 0x31,
        i2c_address: None,
        max_erase_pages: 511,
        quirks: Quirks::empty(),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_pids_are_present_with_sane_layouts() {
        for pid in [
            0x450, 0x480, 0x415, 0x413, 0x419, 0x447, 0x460, 0x482, 0x469,
        ] {
            let d = by_pid(pid).unwrap_or_else(|| panic!("missing {pid:#x}"));
            assert!(d.geometry.total_size() > 0);
            assert!(d.ram.start < d.ram.end);
            assert!(!d.system_memory.is_empty());
            assert!(d.write_unit().is_power_of_two());
        }
    }

    #[test]
    fn sizes_match_the_reference_tables() {
        assert_eq!(
            by_pid(0x450).unwrap().geometry.total_size(),
            2 * 1024 * 1024
        );
        assert_eq!(by_pid(0x413).unwrap().geometry.total_size(), 1024 * 1024);
        assert_eq!(
            by_pid(0x419).unwrap().geometry.total_size(),
            2 * 1024 * 1024
        );
        assert_eq!(by_pid(0x447).unwrap().geometry.total_size(), 192 * 1024);
        assert_eq!(by_pid(0x415).unwrap().geometry.total_size(), 1024 * 1024);
        assert_eq!(by_pid(0x460).unwrap().geometry.total_size(), 128 * 1024);
        assert_eq!(by_pid(0x469).unwrap().geometry.total_size(), 512 * 1024);
        assert_eq!(by_pid(0x450).unwrap().write_unit(), 32);
        assert_eq!(by_pid(0x480).unwrap().write_unit(), 16);
    }

    #[test]
    fn pages_are_numbered_globally_across_banks() {
        let h7 = by_pid(0x450).unwrap();
        assert_eq!(h7.page_index(0x0800_0000), Some(0));
        assert_eq!(h7.page_index(0x0810_0000), Some(8));
        assert_eq!(h7.page(9).unwrap().addr, 0x0812_0000);
        let f4 = by_pid(0x413).unwrap();
        assert_eq!(f4.page_index(0x0801_0000), Some(4));
        assert_eq!(f4.page_index(0x0802_0000), Some(5));
        assert_eq!(f4.page_index(0x0810_0000), None);
        let l4 = by_pid(0x415).unwrap();
        assert_eq!(l4.page_index(0x0808_0000), Some(256));
    }

    #[test]
    fn part_names_and_pids_resolve() {
        assert_eq!(by_part_name("STM32H753ZI").unwrap().pid, 0x450);
        assert_eq!(by_part_name("stm32l475vg").unwrap().pid, 0x415);
        assert_eq!(by_part_name("stm32f407vg").unwrap().pid, 0x413);
        assert_eq!(by_part_name("stm32l073rz").unwrap().pid, 0x447);
        assert_eq!(by_part_name("0x469").unwrap().pid, 0x469);
        assert!(by_part_name("stm32f103c8").is_none());
        assert!(by_part_name("").is_none());
        assert!(by_part_name("stm32ü").is_none());
    }

    /// The one chip table: each ROM device's layout is the flash table's largest part with its
    /// product ID (default bank mode), and the part names agree both ways.
    #[test]
    fn every_rom_device_agrees_with_its_flash_part() {
        for d in DEVICES {
            let parts: Vec<_> = brickless_flash::parts_with_pid(d.pid).collect();
            assert!(!parts.is_empty(), "{}: no flash part", d.name);
            let largest = parts
                .iter()
                .filter(|p| !p.name.contains('-'))
                .max_by_key(|p| p.geometry.total_size())
                .unwrap_or_else(|| panic!("{}: no default-mode part", d.name));
            assert!(
                *d.geometry == largest.geometry,
                "{}: layout is not {}'s",
                d.name,
                largest.name
            );
            for p in &parts {
                assert!(d.matches_part(p.name), "{}: {} not covered", d.name, p.name);
                assert_eq!(by_part_name(p.name).map(|x| x.pid), Some(d.pid));
            }
        }
    }

    #[test]
    fn i2c_addresses_follow_an2606() {
        assert_eq!(by_pid(0x450).unwrap().i2c_address, Some(0x4E));
        assert_eq!(by_pid(0x460).unwrap().i2c_address, Some(0x51));
        assert_eq!(by_pid(0x469).unwrap().i2c_address, Some(0x53));
    }
}
