//! A complete, owned description of an image file for `inspect`-style tools.

use sha2::{Digest, Sha256};

use crate::error::ImageError;
use crate::header::ImageHeader;
use crate::image::ImageView;
use crate::tlv::{kind, TlvArea};
use crate::trailer::TrailerState;

/// One TLV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlvEntry {
    /// Type code (see [`kind`]).
    pub kind: u16,
    /// imgtool's name for the type, `None` for vendor/unknown types.
    pub name: Option<&'static str>,
    /// Offset of the record header from the image start.
    pub offset: u32,
    /// The value (record header excluded).
    pub data: Vec<u8>,
}

/// The trailer of a padded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerInfo {
    /// The max-align whose magic is at the slot end (8, 16, 32), if any magic is.
    pub max_align: Option<u32>,
    /// Decoded with `max_align` (8 if no magic was recognised).
    pub state: TrailerState,
}

/// Everything `inspect` shows about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The decoded image header.
    pub header: ImageHeader,
    /// Records of the protected TLV area in image order; empty when there is none.
    pub protected_tlvs: Vec<TlvEntry>,
    /// Records of the unprotected TLV area in image order.
    pub unprotected_tlvs: Vec<TlvEntry>,
    /// Bytes the image occupies (end of the unprotected TLVs).
    pub tlv_end: u32,
    /// Size of the file or buffer inspected.
    pub total_len: usize,
    /// Value of the protected SEC_CNT TLV, if any.
    pub security_counter: Option<u32>,
    /// SHA-256 of header + payload + protected TLVs, computed.
    pub computed_hash: [u8; 32],
    /// Whether a SHA256 TLV is present and equals `computed_hash` (no signature check).
    pub hash_matches: bool,
    /// Present when the buffer extends past the image (padded to a slot).
    pub trailer: Option<TrailerInfo>,
}

fn entries(area: Option<TlvArea<'_>>) -> Vec<TlvEntry> {
    area.map(|a| {
        a.iter()
            .filter_map(Result::ok)
            .map(|t| TlvEntry {
                kind: t.kind,
                name: kind::name(t.kind),
                offset: t.offset,
                data: t.data.to_vec(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Parse an image file (optionally padded with its trailer). `erased_val` is used to
/// decode trailer flags (0xff for most flash).
pub fn inspect(bytes: &[u8], erased_val: u8) -> Result<ImageInfo, ImageError> {
    let view = ImageView::parse(bytes)?;
    let computed_hash: [u8; 32] = Sha256::digest(view.hashed_region()).into();
    let trailer = (bytes.len() > view.tlv_end as usize).then(|| {
        let max_align = TrailerState::detect_max_align(bytes);
        TrailerState::read(bytes, max_align.unwrap_or(8), erased_val)
            .map(|state| TrailerInfo { max_align, state })
    });
    Ok(ImageInfo {
        header: view.header,
        protected_tlvs: entries(view.protected),
        unprotected_tlvs: entries(Some(view.unprotected)),
        tlv_end: view.tlv_end,
        total_len: bytes.len(),
        security_counter: view.security_counter(),
        computed_hash,
        hash_matches: view.hash_tlv() == Some(&computed_hash),
        trailer: trailer.flatten(),
    })
}
