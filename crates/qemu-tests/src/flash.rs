//! Whole-flash images for QEMU, made by the real engine on the flash model: QEMU cannot
//! program flash, so what the bootloader must find (state records, installed images) is
//! written here by the same code a device runs, then loaded into QEMU's flash.
use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{firmware_layout, BootDecision, BootLoader, Layout, Updater, UpgradeMode};
use brickless_flash::Part;
use brickless_flash_model::SimFlash;
use brickless_image::PublicKey;

/// A device's flash under construction.
pub struct FlashImage {
    /// The model holding the bytes (erased cells read as the part's erased value).
    pub sim: SimFlash,
    /// The part.
    pub part: &'static Part,
    /// The layout the bootloader binaries use.
    pub layout: Layout,
}

impl FlashImage {
    /// An erased flash of `part` (chip-table name).
    pub fn new(part: &str) -> FlashImage {
        let part = brickless_test_support::flash_part(part);
        let layout = firmware_layout(&part.geometry).expect("the firmware layout");
        FlashImage {
            sim: SimFlash::new(part),
            part,
            layout,
        }
    }

    /// Puts the bootloader's bytes at the start of flash.
    pub fn bootloader(&mut self, bytes: &[u8]) {
        let region = self.layout.spec().bootloader;
        assert!(
            bytes.len() as u32 <= region.size,
            "the bootloader ({} B) does not fit its {} B region",
            bytes.len(),
            region.size
        );
        self.sim
            .preload(region.start, bytes)
            .expect("preload the bootloader");
    }

    /// Installs `image` for good the way a device does: staged by the application side, then
    /// moved into the primary slot by the bootloader side, both checking it with `keys`.
    pub fn install(&mut self, image: &[u8], keys: &[PublicKey]) {
        let check = McubootCheck { keys };
        let mut updater = Updater::new(&mut self.sim, self.layout, check);
        updater.erase_staging().expect("erase staging");
        let wu = self.layout.write_unit() as usize;
        let mut padded = image.to_vec();
        padded.resize(image.len().div_ceil(wu) * wu, self.layout.erased());
        updater.write_staged(0, &padded).expect("stage the image");
        updater
            .request_upgrade(UpgradeMode::Permanent)
            .expect("the engine accepts the image");
        let mut buf = vec![0u8; 4096];
        let mut bl = BootLoader::new(&mut self.sim, self.layout, check, &mut buf).expect("buffer");
        match bl.boot().expect("no cut") {
            BootDecision::Boot(t) => assert_eq!(t.address, self.layout.spec().primary.start),
            other => panic!("the engine did not install the image: {other:?}"),
        }
    }

    /// Overwrites the primary slot with `bytes` as they are (no state change): damaged or
    /// swapped-in images the bootloader must refuse.
    pub fn replace_primary(&mut self, bytes: &[u8]) {
        let primary = self.layout.spec().primary;
        self.sim
            .erase_abs(primary.start, primary.end())
            .expect("erase the slot");
        self.sim.preload(primary.start, bytes).expect("preload");
    }

    /// Erases the secondary slot (no state change), so it offers nothing to install.
    pub fn erase_secondary(&mut self) {
        let secondary = self.layout.spec().secondary;
        self.sim
            .erase_abs(secondary.start, secondary.end())
            .expect("erase the slot");
    }

    /// The primary slot's first `len` bytes.
    pub fn primary(&self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.sim
            .peek(self.layout.spec().primary.start, &mut out)
            .expect("peek");
        out
    }

    /// Every byte of flash from its base (the file QEMU loads at 0x0800_0000).
    pub fn bytes(&self) -> Vec<u8> {
        let g = &self.part.geometry;
        let mut out = vec![g.erased; g.span() as usize];
        self.sim
            .peek(g.base(), &mut out)
            .expect("peek the whole flash");
        out
    }
}
