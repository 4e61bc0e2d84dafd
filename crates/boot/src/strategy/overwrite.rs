//! Overwrite: copy the update over the primary slot, no revert.
use super::{Ctx, Strategy};
use crate::layout::{LayoutError, LayoutSpec, Region};
use crate::state::StateStore;
use crate::{Error, ImageInfo, Platform};
use brickless_flash::Geometry;
use embedded_storage::nor_flash::NorFlash;

/// Overwrite (no revert): the verified update in the secondary slot is copied over the
/// primary slot, unit by unit, skipping units that already match. The secondary slot is not
/// touched, so an interrupted copy resumes from content and the update stays available as a
/// backup until the copy is complete and verified (and after).
///
/// Plan record: none. The install stays in phase `Pending`, which is its resume.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overwrite;

impl Strategy for Overwrite {
    fn name(&self) -> &'static str {
        "overwrite"
    }
    fn code(&self) -> u8 {
        2
    }
    fn plan_digests(&self) -> bool {
        false
    }
    fn check_layout(&self, _spec: &LayoutSpec, _geometry: &Geometry) -> Result<(), LayoutError> {
        Ok(())
    }
    fn can_revert(&self) -> bool {
        false
    }
    fn staging(&self, spec: &LayoutSpec) -> Region {
        Region::new(spec.secondary.start, spec.primary.size)
    }
    /// As large as the primary: the update is staged where the copy reads it.
    fn secondary_size(&self, primary: u32, _unit: u32) -> u32 {
        primary
    }
    fn revert_source(&self, _spec: &LayoutSpec) -> Option<Region> {
        None
    }

    fn install<F: NorFlash, P: Platform>(
        &self,
        ctx: &mut Ctx<'_, F, P>,
        _store: &mut StateStore,
        new: &ImageInfo,
        _old: Option<&ImageInfo>,
    ) -> Result<(), Error> {
        ctx.copy_secondary_to_primary(new.size)
    }

    /// No plan is ever recorded: a `Swapping` record for this layout was not written here.
    fn resume<F: NorFlash, P: Platform>(
        &self,
        _ctx: &mut Ctx<'_, F, P>,
        _store: &mut StateStore,
    ) -> Result<(), Error> {
        Err(Error::Corrupt)
    }

    fn revert<F: NorFlash, P: Platform>(
        &self,
        _ctx: &mut Ctx<'_, F, P>,
        _store: &mut StateStore,
    ) -> Result<(), Error> {
        Err(Error::RevertUnsupported)
    }
}
