//! Decoding request bodies: CBOR maps with text keys, unknown keys skipped, every value
//! checked for its type. Borrowed from the packet (no allocation); any malformed input is an
//! error value, never a panic.
use minicbor::data::Type;
use minicbor::Decoder;

/// Why a request body was refused (the server answers `MGMT_ERR_EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is not a CBOR map, or a value is malformed or truncated.
    Malformed,
    /// A known key holds a value of the wrong type or out of range.
    BadField(&'static str),
    /// A required key is missing.
    Missing(&'static str),
}

impl core::fmt::Display for BodyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BodyError::Malformed => f.write_str("the request body is not a well-formed CBOR map"),
            BodyError::BadField(k) => write!(
                f,
                "the request field `{k}` has the wrong type or is out of range"
            ),
            BodyError::Missing(k) => write!(f, "the request lacks the field `{k}`"),
        }
    }
}

impl core::error::Error for BodyError {}

/// Containers a request body may nest (arrays, maps); deeper is refused.
const MAX_NESTING: usize = 16;

/// One open container while skipping.
#[derive(Clone, Copy)]
struct Open {
    /// Items still due; `None`: indefinite, until its break.
    due: Option<u64>,
    /// An indefinite map: items seen so far must be even at its break.
    map_items: Option<u64>,
}

/// Skips one well-formed data item (RFC 8949 section 5.3.1). minicbor's `Decoder::skip`
/// takes a break where an item is due and one-byte simple values below 32, and without
/// `alloc` refuses indefinite arrays and maps inside definite ones: this one refuses the
/// former and takes the latter, with or without `alloc`.
fn skip_item(d: &mut Decoder<'_>) -> Result<(), BodyError> {
    let bad = |_| BodyError::Malformed;
    let mut open = [Open {
        due: None,
        map_items: None,
    }; MAX_NESTING];
    let mut depth = 0usize;
    // A tag was just read: its content is due, not a break.
    let mut tagged = false;
    loop {
        let ty = d.datatype().map_err(bad)?;
        if core::mem::replace(&mut tagged, ty == Type::Tag) && ty == Type::Break {
            return Err(BodyError::Malformed);
        }
        let container = match ty {
            Type::Break => {
                let top = depth.checked_sub(1).map(|i| open[i]);
                match top {
                    Some(Open {
                        due: None,
                        map_items,
                    }) if map_items.is_none_or(|n| n % 2 == 0) => {
                        d.set_position(d.position() + 1);
                        depth -= 1;
                    }
                    _ => return Err(BodyError::Malformed),
                }
                None
            }
            Type::Array => d.array().map_err(bad)?.map(|n| (Some(n), None)),
            Type::Map => d
                .map()
                .map_err(bad)?
                .map(|n| (Some(n.saturating_mul(2)), None)),
            Type::ArrayIndef => {
                d.array().map_err(bad)?;
                Some((None, None))
            }
            Type::MapIndef => {
                d.map().map_err(bad)?;
                Some((None, Some(0)))
            }
            Type::Tag => {
                // The tagged item follows and is the item.
                d.tag().map_err(bad)?;
                continue;
            }
            Type::Simple => {
                if d.input()[d.position()] == 0xf8
                    && d.input().get(d.position() + 1).is_some_and(|&v| v < 32)
                {
                    return Err(BodyError::Malformed);
                }
                d.skip().map_err(bad)?;
                None
            }
            Type::Unknown(_) => return Err(BodyError::Malformed),
            // Numbers, booleans, null, undefined, floats, strings (minicbor checks the chunks
            // of an indefinite one and the UTF-8 of text).
            _ => {
                d.skip().map_err(bad)?;
                None
            }
        };
        match container {
            Some((Some(0), _)) | None => {}
            Some((due, map_items)) => {
                let slot = open.get_mut(depth).ok_or(BodyError::Malformed)?;
                *slot = Open { due, map_items };
                depth += 1;
                continue;
            }
        }
        // An item is complete: count it in its container, closing the ones it completes.
        loop {
            let Some(top) = depth.checked_sub(1).map(|i| &mut open[i]) else {
                return Ok(());
            };
            match top.due.as_mut() {
                Some(n) => {
                    *n -= 1;
                    if *n > 0 {
                        break;
                    }
                    depth -= 1;
                }
                None => {
                    if let Some(m) = top.map_items.as_mut() {
                        *m += 1;
                    }
                    break;
                }
            }
        }
    }
}

/// Calls `field(key, decoder)` for each entry of the map in `body`; `field` returns
/// `Ok(true)` when it consumed the value, `Ok(false)` to have it skipped. An empty body counts
/// as an empty map (some clients send none with a read).
fn walk<'b>(
    body: &'b [u8],
    mut field: impl FnMut(&'b str, &mut Decoder<'b>) -> Result<bool, BodyError>,
) -> Result<(), BodyError> {
    if body.is_empty() {
        return Ok(());
    }
    let mut d = Decoder::new(body);
    let malformed = |_| BodyError::Malformed;
    let entries = d.map().map_err(malformed)?;
    let mut seen = 0u64;
    loop {
        match entries {
            Some(n) if seen == n => break,
            None if d.datatype().map_err(malformed)? == Type::Break => {
                d.set_position(d.position() + 1);
                break;
            }
            _ => {}
        }
        let key = match d.datatype().map_err(malformed)? {
            Type::String => d.str().map_err(malformed)?,
            _ => {
                // Not a text key: skip key and value (no known field has one).
                skip_item(&mut d)?;
                skip_item(&mut d)?;
                seen += 1;
                continue;
            }
        };
        if !field(key, &mut d)? {
            skip_item(&mut d)?;
        }
        seen += 1;
    }
    if d.position() != body.len() {
        return Err(BodyError::Malformed);
    }
    Ok(())
}

fn uint(d: &mut Decoder<'_>, key: &'static str) -> Result<u32, BodyError> {
    match d.datatype().map_err(|_| BodyError::Malformed)? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            let v = d.u64().map_err(|_| BodyError::Malformed)?;
            u32::try_from(v).map_err(|_| BodyError::BadField(key))
        }
        _ => Err(BodyError::BadField(key)),
    }
}

fn boolean(d: &mut Decoder<'_>, key: &'static str) -> Result<bool, BodyError> {
    match d.datatype().map_err(|_| BodyError::Malformed)? {
        Type::Bool => d.bool().map_err(|_| BodyError::Malformed),
        _ => Err(BodyError::BadField(key)),
    }
}

fn bytes<'b>(d: &mut Decoder<'b>, key: &'static str) -> Result<&'b [u8], BodyError> {
    match d.datatype().map_err(|_| BodyError::Malformed)? {
        Type::Bytes => d.bytes().map_err(|_| BodyError::Malformed),
        _ => Err(BodyError::BadField(key)),
    }
}

fn text<'b>(d: &mut Decoder<'b>, key: &'static str) -> Result<&'b str, BodyError> {
    match d.datatype().map_err(|_| BodyError::Malformed)? {
        Type::String => d.str().map_err(|_| BodyError::Malformed),
        _ => Err(BodyError::BadField(key)),
    }
}

/// Image upload (group 1, command 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upload<'b> {
    /// Image number (0 for a single-image device; 1 also names its staging slot).
    pub image: Option<u32>,
    /// Total length of the image; required with `off == 0`.
    pub len: Option<u32>,
    /// Offset of `data` in the image.
    pub off: u32,
    /// SHA-256 of the whole upload (identifies the session for resume, checked at the end).
    pub sha: Option<&'b [u8]>,
    /// The chunk.
    pub data: &'b [u8],
    /// Accept only an image newer than the running one.
    pub upgrade: bool,
}

impl<'b> Upload<'b> {
    /// Decodes an upload request body.
    pub fn decode(body: &'b [u8]) -> Result<Self, BodyError> {
        let mut r = Upload::default();
        let (mut off, mut data) = (None, None);
        walk(body, |k, d| {
            match k {
                "image" => r.image = Some(uint(d, "image")?),
                "len" => r.len = Some(uint(d, "len")?),
                "off" => off = Some(uint(d, "off")?),
                "sha" => r.sha = Some(bytes(d, "sha")?),
                "data" => data = Some(bytes(d, "data")?),
                "upgrade" => r.upgrade = boolean(d, "upgrade")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        r.off = off.ok_or(BodyError::Missing("off"))?;
        r.data = data.ok_or(BodyError::Missing("data"))?;
        if r.sha.is_some_and(|s| s.len() != 32) {
            return Err(BodyError::BadField("sha"));
        }
        Ok(r)
    }
}

/// Image state write (group 1, command 0, write): test or confirm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateWrite<'b> {
    /// The image's SHA-256 (its hash TLV); absent with `confirm` means the running image.
    pub hash: Option<&'b [u8]>,
    /// Keep for good (`true`) or boot once as a test (`false`).
    pub confirm: bool,
}

impl<'b> StateWrite<'b> {
    /// Decodes a state write body.
    pub fn decode(body: &'b [u8]) -> Result<Self, BodyError> {
        let mut r = StateWrite::default();
        walk(body, |k, d| {
            match k {
                "hash" => r.hash = Some(bytes(d, "hash")?),
                "confirm" => r.confirm = boolean(d, "confirm")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(r)
    }
}

/// brickless resume (group 64, command 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume<'b> {
    /// Total length of the upload.
    pub len: u32,
    /// SHA-256 of the whole upload.
    pub sha: &'b [u8],
    /// A truncated SHA-256 per block of the upload, in order.
    pub digests: &'b [u8],
}

impl<'b> Resume<'b> {
    /// Decodes a resume body.
    pub fn decode(body: &'b [u8]) -> Result<Self, BodyError> {
        let (mut len, mut sha, mut digests) = (None, None, None);
        walk(body, |k, d| {
            match k {
                "len" => len = Some(uint(d, "len")?),
                "sha" => sha = Some(bytes(d, "sha")?),
                "digests" => digests = Some(bytes(d, "digests")?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let r = Resume {
            len: len.ok_or(BodyError::Missing("len"))?,
            sha: sha.ok_or(BodyError::Missing("sha"))?,
            digests: digests.ok_or(BodyError::Missing("digests"))?,
        };
        if r.sha.len() != 32 {
            return Err(BodyError::BadField("sha"));
        }
        let blocks = r.len.div_ceil(crate::header::brickless::BLOCK) as usize;
        if r.digests.len() != blocks * crate::header::brickless::DIGEST {
            return Err(BodyError::BadField("digests"));
        }
        Ok(r)
    }
}

/// Echo (group 0, command 0).
pub fn echo(body: &[u8]) -> Result<&str, BodyError> {
    let mut out = None;
    walk(body, |k, d| {
        if k == "d" {
            out = Some(text(d, "d")?);
            return Ok(true);
        }
        Ok(false)
    })?;
    out.ok_or(BodyError::Missing("d"))
}

/// Image erase (group 1, command 5): the slot, 1 when absent.
pub fn erase_slot(body: &[u8]) -> Result<u32, BodyError> {
    let mut slot = 1;
    walk(body, |k, d| {
        if k == "slot" {
            slot = uint(d, "slot")?;
            return Ok(true);
        }
        Ok(false)
    })?;
    Ok(slot)
}

/// Bootloader info (group 0, command 8): the query, if any.
pub fn bootloader_query(body: &[u8]) -> Result<Option<&str>, BodyError> {
    let mut q = None;
    walk(body, |k, d| {
        if k == "query" {
            q = Some(text(d, "query")?);
            return Ok(true);
        }
        Ok(false)
    })?;
    Ok(q)
}

/// Protect (brickless group, write): `{"wrp": true}` is the only request; `false` or a
/// missing field is refused (write protection is never removed or set by accident).
pub fn protect(body: &[u8]) -> Result<(), BodyError> {
    let mut wrp = None;
    walk(body, |k, d| {
        if k == "wrp" {
            wrp = Some(boolean(d, "wrp")?);
            return Ok(true);
        }
        Ok(false)
    })?;
    match wrp {
        Some(true) => Ok(()),
        Some(false) => Err(BodyError::BadField("wrp")),
        None => Err(BodyError::Missing("wrp")),
    }
}

/// Checks that a body is a well-formed map (for commands that take no fields).
pub fn any_map(body: &[u8]) -> Result<(), BodyError> {
    walk(body, |_, _| Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_fields_decode_and_unknown_keys_are_skipped() {
        // {"image":0,"len":100,"off":0,"sha":h'00'*32,"data":h'0102',"upgrade":false,"x":[1]}
        let mut b = [0u8; 128];
        let mut e = minicbor::Encoder::new(&mut b[..]);
        e.map(7).unwrap();
        e.str("image").unwrap().u8(0).unwrap();
        e.str("len").unwrap().u32(100).unwrap();
        e.str("off").unwrap().u8(0).unwrap();
        e.str("sha").unwrap().bytes(&[0u8; 32]).unwrap();
        e.str("data").unwrap().bytes(&[1, 2]).unwrap();
        e.str("upgrade").unwrap().bool(false).unwrap();
        e.str("x").unwrap().array(1).unwrap().u8(1).unwrap();
        let n = 128 - e.into_writer().len();
        let u = Upload::decode(&b[..n]).unwrap();
        assert_eq!(u.len, Some(100));
        assert_eq!(u.data, &[1, 2]);
        assert_eq!(u.sha, Some(&[0u8; 32][..]));
        assert_eq!(u.image, Some(0));
        assert!(!u.upgrade);
    }

    #[test]
    fn wrong_types_missing_fields_and_garbage_are_errors() {
        // {"off":"0","data":h''}
        assert_eq!(
            Upload::decode(&[
                0xa2, 0x63, b'o', b'f', b'f', 0x61, b'0', 0x64, b'd', b'a', b't', b'a', 0x40
            ]),
            Err(BodyError::BadField("off"))
        );
        // {"data":h''}
        assert_eq!(
            Upload::decode(&[0xa1, 0x64, b'd', b'a', b't', b'a', 0x40]),
            Err(BodyError::Missing("off"))
        );
        // a map claiming two entries with one present, and trailing bytes
        assert_eq!(
            echo(&[0xa2, 0x61, b'd', 0x61, b'x']),
            Err(BodyError::Malformed)
        );
        assert_eq!(
            echo(&[0xa1, 0x61, b'd', 0x61, b'x', 0x00]),
            Err(BodyError::Malformed)
        );
        assert_eq!(echo(&[0x80]), Err(BodyError::Malformed));
        assert_eq!(echo(&[0xa1, 0x61, b'd', 0x61, b'x']), Ok("x"));
        // an indefinite-length map works
        assert_eq!(echo(&[0xbf, 0x61, b'd', 0x61, b'x', 0xff]), Ok("x"));
        // end markers where an item is due, found by fuzzing: refused
        assert_eq!(any_map(&[0xa1, 0xff, 0xff]), Err(BodyError::Malformed));
        assert_eq!(
            echo(&[0xa2, 0x61, b'd', 0x61, b'y', 0x61, b'x', 0xff]),
            Err(BodyError::Malformed)
        );
        assert_eq!(
            any_map(&[0xa1, 0x61, b'x', 0x82, 0x01, 0xff]),
            Err(BodyError::Malformed)
        );
        assert_eq!(
            any_map(&[0xa1, 0x61, b'x', 0xc1, 0xff]),
            Err(BodyError::Malformed)
        );
        assert_eq!(
            any_map(&[0xa1, 0x61, b'x', 0xf8, 0x10]),
            Err(BodyError::Malformed)
        );
        // and an open-ended array inside a definite one is taken, with or without `alloc`
        assert_eq!(any_map(&[0xa1, 0x61, b'x', 0x82, 0x9f, 0xff, 0x01]), Ok(()));
        // a sha of the wrong length
        assert_eq!(
            Upload::decode(&[
                0xa3, 0x63, b'o', b'f', b'f', 0x00, 0x64, b'd', b'a', b't', b'a', 0x40, 0x63, b's',
                b'h', b'a', 0x41, 0x00
            ]),
            Err(BodyError::BadField("sha"))
        );
    }
}
