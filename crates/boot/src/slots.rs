//! What both sides ask of the slots and the state: load and append records, verify an
//! image where it sits, decide whether it may run or replace the running one, and record an
//! image kept for good. One copy of each rule, whichever side applies it.
use crate::layout::{Layout, Region, DIGEST_LEN};
use crate::state::{BootState, DigestSet, InstalledImage, StateStore};
use crate::{Error, ImageCheck, ImageInfo};
use embedded_storage::nor_flash::NorFlash;

/// The flash, its layout and the image check one side works with.
pub(crate) struct Slots<F, C> {
    pub flash: F,
    pub layout: Layout,
    pub check: C,
}

impl<F: NorFlash, C> Slots<F, C> {
    /// The newest record and where the next one goes.
    pub fn load(&mut self) -> StateStore {
        StateStore::load(&mut self.flash, &self.layout)
    }

    /// Appends a record without a plan (every record but a strategy's plan).
    pub fn record(&mut self, store: &mut StateStore, next: BootState) -> Result<(), Error> {
        store.write(&mut self.flash, &self.layout, next, no_digests)
    }

    /// SHA-256 of the first `size` bytes of the primary slot, read through `buf` (`None` if
    /// unreadable).
    pub fn primary_sha256(&mut self, size: u32, buf: &mut [u8]) -> Option<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let start = self.layout.offset(self.layout.spec().primary.start);
        if size > self.layout.spec().primary.size {
            return None;
        }
        let mut h = Sha256::new();
        let mut done = 0;
        while done < size {
            let n = (size - done).min(buf.len() as u32) as usize;
            self.flash.read(start + done, &mut buf[..n]).ok()?;
            h.update(&buf[..n]);
            done += n as u32;
        }
        Some(h.finalize().into())
    }

    /// The record of a just-verified primary image.
    pub fn installed(&mut self, img: &ImageInfo, buf: &mut [u8]) -> InstalledImage {
        match self.primary_sha256(img.size, buf) {
            Some(sha256) => InstalledImage {
                size: img.size,
                version: img.version,
                security_counter: img.security_counter,
                sha256,
                hash: img.hash,
            },
            None => InstalledImage::NONE,
        }
    }
}

impl<F: NorFlash, C: ImageCheck<F>> Slots<F, C> {
    /// Whether a verified primary image may start: it runs from the primary slot and its
    /// security counter is not below the floor.
    pub fn bootable(&self, img: &ImageInfo, state: &BootState) -> bool {
        self.check
            .counter_passes(img.security_counter, state.floor_counter)
            && img.exec.runs_at(self.layout.spec().primary.start).is_ok()
    }

    /// Whether `new` may replace what runs now: it runs from the primary slot, it is not below
    /// the recorded floor, and not older than the bootable primary image.
    pub fn acceptable(
        &self,
        new: &ImageInfo,
        primary: Option<&ImageInfo>,
        state: &BootState,
    ) -> Result<(), Error> {
        new.exec.runs_at(self.layout.spec().primary.start)?;
        let mut min_counter = state.floor_counter;
        let mut min_version = state.floor_version;
        if let Some(p) = primary.filter(|p| self.bootable(p, state)) {
            min_counter = self.check.raise_floor(min_counter, p.security_counter);
            min_version = min_version.max(p.version.packed());
        }
        if self.check.counter_passes(new.security_counter, min_counter)
            && new.version.packed() >= min_version
        {
            Ok(())
        } else {
            Err(Error::Downgrade)
        }
    }

    /// Records the verified primary image `img` as kept for good: `Idle`, the floor raised
    /// to it, its hash recorded for later boots.
    pub fn keep(
        &mut self,
        store: &mut StateStore,
        img: &ImageInfo,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        let installed = self.installed(img, buf);
        let mut next = BootState {
            installed,
            ..store.state.idle()
        };
        next.floor_counter = self
            .check
            .raise_floor(next.floor_counter, img.security_counter);
        next.floor_version = next.floor_version.max(img.version.packed());
        self.record(store, next)
    }

    /// Verifies the image whose header starts `region` (at most the region's size).
    pub fn check_at(&mut self, region: Region) -> Option<ImageInfo> {
        self.check.check(
            &mut self.flash,
            self.layout.offset(region.start),
            region.size,
        )
    }

    /// Verifies the image in the primary slot.
    pub fn check_primary(&mut self) -> Option<ImageInfo> {
        self.check_at(self.layout.spec().primary)
    }

    /// Verifies the image staged for an update.
    pub fn check_staged(&mut self) -> Option<ImageInfo> {
        self.check_at(self.layout.staging())
    }
}

/// The digest source of a record without a plan (every record but a digest plan).
pub(crate) fn no_digests<F>(_: &mut F, _: DigestSet, _: u32) -> Result<[u8; DIGEST_LEN], Error> {
    Err(Error::Corrupt)
}

/// The accessors both sides share, over their `slots` field.
macro_rules! slot_accessors {
    () => {
        /// The checked layout this side works on.
        pub fn layout(&self) -> &Layout {
            &self.slots.layout
        }
        /// The flash.
        pub fn flash(&self) -> &F {
            &self.slots.flash
        }
        /// The flash, mutably (tests and tools that plant content).
        pub fn flash_mut(&mut self) -> &mut F {
            &mut self.slots.flash
        }
        /// Gives the flash back.
        pub fn into_flash(self) -> F {
            self.slots.flash
        }
        /// The recorded state (factory default when no valid record exists).
        pub fn state(&mut self) -> BootState {
            self.slots.load().state
        }
    };
}
pub(crate) use slot_accessors;
