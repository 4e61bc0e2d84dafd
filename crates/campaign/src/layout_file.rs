//! Layouts from a small TOML file, for the CLI and the virtual device:
//!
//! ```toml
//! strategy = "swap"          # or "overwrite", "bank-swap"
//! unit = 0x20000             # copy/swap unit: a multiple of every sector in the slots
//! bootloader = { start = 0x08000000, size = 0x20000 }
//! state = [ { start = 0x08020000, size = 0x20000 }, { start = 0x08040000, size = 0x20000 } ]
//! primary = { start = 0x08060000, size = 0xC0000 }
//! secondary = { start = 0x08120000, size = 0xE0000 }
//! ```
use brickless_boot::{Layout, LayoutError, LayoutSpec, Region, StrategyKind};
use brickless_flash::Geometry;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    start: u32,
    size: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    strategy: String,
    unit: u32,
    bootloader: RegionFile,
    state: [RegionFile; 2],
    primary: RegionFile,
    secondary: RegionFile,
}

/// Why a layout file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutFileError {
    /// Not TOML, or a missing, unknown or mistyped field.
    #[error("layout file is not valid TOML for a layout: {0}")]
    Toml(#[from] toml::de::Error),
    /// `strategy` names no strategy (the name given).
    #[error("unknown strategy `{0}`: use \"swap\", \"overwrite\" or \"bank-swap\"")]
    Strategy(String),
    /// The regions do not form a valid layout on this flash.
    #[error("{0}")]
    Layout(LayoutError),
}

fn region(r: &RegionFile) -> Region {
    Region::new(r.start, r.size)
}

/// Parses and checks a layout file against `geometry`.
pub fn parse_layout(text: &str, geometry: &Geometry) -> Result<Layout, LayoutFileError> {
    let f: LayoutFile = toml::from_str(text)?;
    let strategy = StrategyKind::from_name(&f.strategy)
        .ok_or_else(|| LayoutFileError::Strategy(f.strategy.clone()))?;
    let spec = LayoutSpec {
        bootloader: region(&f.bootloader),
        primary: region(&f.primary),
        secondary: region(&f.secondary),
        state: [region(&f.state[0]), region(&f.state[1])],
        unit: f.unit,
        strategy,
    };
    Layout::new(spec, geometry).map_err(LayoutFileError::Layout)
}

/// Writes a layout in the file format [`parse_layout`] reads.
pub fn to_toml(layout: &Layout) -> String {
    let s = layout.spec();
    let r = |r: Region| format!("{{ start = {:#010x}, size = {:#x} }}", r.start, r.size);
    format!(
        "strategy = \"{}\"\nunit = {:#x}\nbootloader = {}\nstate = [{}, {}]\nprimary = {}\nsecondary = {}\n",
        s.strategy.name(),
        s.unit,
        r(s.bootloader),
        r(s.state[0]),
        r(s.state[1]),
        r(s.primary),
        r(s.secondary)
    )
}
