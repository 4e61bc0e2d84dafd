//! `smp_request_decoder`: the SMP server's CBOR request-body decoders
//! (`brickless_smp::request`), on arbitrary bytes and on maps built from input fields.
//!
//! The first input byte picks the mode:
//! - raw (even): the rest is a body, given to every decoder (`Upload::decode`,
//!   `StateWrite::decode`, `Resume::decode`, `echo`, `erase_slot`, `bootloader_query`,
//!   `any_map`);
//! - structured (odd): the rest describes a map (definite or indefinite; entries with the
//!   decoders' keys, near-miss and non-text keys; values of every CBOR type, some encoded
//!   non-canonically, nested arrays, maps and tags), encoded with minicbor, then sometimes
//!   damaged (truncated, a byte appended, an entry count one off).
//!
//! What must hold:
//! - nothing panics;
//! - every slice a decoder returns (`data`, `sha`, `hash`, `digests`, the echo text, the
//!   query) lies inside the body; an upload's or a resume's `sha` is 32 bytes, a resume has
//!   one 8-byte digest per 4 KiB block of `len`; a decoded upload, state write or resume,
//!   encoded again, decodes to itself;
//! - the decoders agree on structure: when `any_map` refuses a body every decoder does, and
//!   no decoder calls a body `Malformed` that `any_map` accepts;
//! - `any_map` accepts only well-formed CBOR (RFC 8949 section 5.3.1, checked by a strict
//!   validator here) that is one map, or an empty body;
//! - structured mode: each decoder returns exactly what a model of its contract predicts from
//!   the entries (last occurrence of a key wins, the first wrongly typed known key is
//!   `BadField`, invalid UTF-8 anywhere is `Malformed`, then `Missing` and the lengths);
//!   a damaged body is refused, as `Malformed` when the undamaged one decodes.
use brickless_smp::header::brickless::{BLOCK, DIGEST};
use brickless_smp::request::{self, BodyError, Resume, StateWrite, Upload};
use minicbor::Encoder;

use crate::input::Input;
use crate::{relax_from_env, trace};

/// The name of the strict well-formedness check in `BRICKLESS_FUZZ_RELAX`.
pub const LENIENT: &str = "lenient-cbor";

fn relaxed(name: &str) -> bool {
    relax_from_env().contains(&name)
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(rest);
    } else {
        structured(&mut Input::new(rest));
    }
}

/// Every decoder's answer for one body.
struct Answers<'b> {
    any: Result<(), BodyError>,
    upload: Result<Upload<'b>, BodyError>,
    state: Result<StateWrite<'b>, BodyError>,
    resume: Result<Resume<'b>, BodyError>,
    echo: Result<&'b str, BodyError>,
    slot: Result<u32, BodyError>,
    query: Result<Option<&'b str>, BodyError>,
}

fn decode_all(body: &[u8]) -> Answers<'_> {
    Answers {
        any: request::any_map(body),
        upload: Upload::decode(body),
        state: StateWrite::decode(body),
        resume: Resume::decode(body),
        echo: request::echo(body),
        slot: request::erase_slot(body),
        query: request::bootloader_query(body),
    }
}

fn inside(body: &[u8], s: &[u8]) -> bool {
    let b = body.as_ptr_range();
    let r = s.as_ptr_range();
    b.start <= r.start && r.end <= b.end
}

/// The checks that hold for any body.
fn check_any(body: &[u8], a: &Answers<'_>) {
    let errs = [
        a.upload.err(),
        a.state.err(),
        a.resume.err(),
        a.echo.err(),
        a.slot.err(),
        a.query.err(),
    ];
    if a.any.is_err() {
        assert!(
            errs.iter().all(Option::is_some),
            "any_map refuses a body another decoder accepts: {errs:?}"
        );
    } else {
        assert!(
            !errs.contains(&Some(BodyError::Malformed)),
            "any_map accepts a body another decoder calls malformed: {errs:?}"
        );
    }
    if a.any.is_ok() && !body.is_empty() && !relaxed(LENIENT) {
        assert!(
            well_formed_map(body) != Some(false),
            "a request decoder accepts a body that is not one well-formed CBOR map: {body:02x?}"
        );
    }
    if let Ok(u) = &a.upload {
        assert!(inside(body, u.data), "upload data outside the body");
        if let Some(sha) = u.sha {
            assert_eq!(sha.len(), 32, "upload sha of {} bytes", sha.len());
            assert!(inside(body, sha), "upload sha outside the body");
        }
        let again = encode_upload(u);
        assert_eq!(
            Upload::decode(&again).as_ref(),
            Ok(u),
            "an upload re-encoded does not decode to itself"
        );
    }
    if let Ok(s) = &a.state {
        if let Some(h) = s.hash {
            assert!(inside(body, h), "state hash outside the body");
        }
        let again = encode_state(s);
        assert_eq!(
            StateWrite::decode(&again).as_ref(),
            Ok(s),
            "a state write re-encoded does not decode to itself"
        );
    }
    if let Ok(r) = &a.resume {
        assert_eq!(r.sha.len(), 32, "resume sha of {} bytes", r.sha.len());
        assert!(
            inside(body, r.sha) && inside(body, r.digests),
            "resume slices outside the body"
        );
        assert_eq!(
            r.digests.len(),
            r.len.div_ceil(BLOCK) as usize * DIGEST,
            "resume digests for {} bytes",
            r.len
        );
        let again = encode_resume(r);
        assert_eq!(
            Resume::decode(&again).as_ref(),
            Ok(r),
            "a resume re-encoded does not decode to itself"
        );
    }
    if let Ok(t) = a.echo {
        assert!(inside(body, t.as_bytes()), "echo text outside the body");
    }
    if let Ok(Some(q)) = a.query {
        assert!(inside(body, q.as_bytes()), "query outside the body");
    }
}

fn raw(body: &[u8]) {
    let a = decode_all(body);
    trace!("raw {} bytes: any_map {:?}", body.len(), a.any);
    check_any(body, &a);
}

fn encode_upload(u: &Upload<'_>) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    let n =
        3 + u64::from(u.image.is_some()) + u64::from(u.len.is_some()) + u64::from(u.sha.is_some());
    e.map(n).unwrap();
    if let Some(i) = u.image {
        e.str("image").unwrap().u32(i).unwrap();
    }
    if let Some(l) = u.len {
        e.str("len").unwrap().u32(l).unwrap();
    }
    e.str("off").unwrap().u32(u.off).unwrap();
    if let Some(s) = u.sha {
        e.str("sha").unwrap().bytes(s).unwrap();
    }
    e.str("data").unwrap().bytes(u.data).unwrap();
    e.str("upgrade").unwrap().bool(u.upgrade).unwrap();
    e.into_writer()
}

fn encode_resume(r: &Resume<'_>) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(3).unwrap();
    e.str("len").unwrap().u32(r.len).unwrap();
    e.str("sha").unwrap().bytes(r.sha).unwrap();
    e.str("digests").unwrap().bytes(r.digests).unwrap();
    e.into_writer()
}

fn encode_state(s: &StateWrite<'_>) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(1 + u64::from(s.hash.is_some())).unwrap();
    if let Some(h) = s.hash {
        e.str("hash").unwrap().bytes(h).unwrap();
    }
    e.str("confirm").unwrap().bool(s.confirm).unwrap();
    e.into_writer()
}

// ---------------------------------------------------------------------------------------
// A strict well-formedness check (RFC 8949 section 5.3.1 and appendix C), independent of
// minicbor: reserved additional information, indefinite lengths where none is allowed,
// breaks outside an indefinite item, string chunks of another type, one-byte simple values
// below 32, and truncation are all refused.

/// Whether `b` is exactly one well-formed CBOR data item, a map; `None` when it nests deeper
/// than the validator follows (no answer).
pub fn well_formed_map(b: &[u8]) -> Option<bool> {
    let mut pos = 0;
    if !matches!(b.first(), Some(&x) if x >> 5 == 5) {
        return Some(false);
    }
    match item(b, &mut pos, 0) {
        Ok(Item::Value) => Some(pos == b.len()),
        Ok(Item::Break) | Err(Bad::Malformed) => Some(false),
        Err(Bad::TooDeep) => None,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Value,
    Break,
}

#[derive(Debug, PartialEq, Eq)]
enum Bad {
    Malformed,
    TooDeep,
}

/// Nesting the validator follows (it recurses; minicbor's skip has no limit).
const MAX_DEPTH: u32 = 8192;

fn argument(b: &[u8], pos: &mut usize, ai: u8) -> Result<Option<u64>, Bad> {
    let n = match ai {
        0..=23 => return Ok(Some(u64::from(ai))),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 => return Ok(None),
        _ => return Err(Bad::Malformed),
    };
    let s = b.get(*pos..*pos + n).ok_or(Bad::Malformed)?;
    *pos += n;
    Ok(Some(s.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x))))
}

fn item(b: &[u8], pos: &mut usize, depth: u32) -> Result<Item, Bad> {
    if depth > MAX_DEPTH {
        return Err(Bad::TooDeep);
    }
    let ib = *b.get(*pos).ok_or(Bad::Malformed)?;
    *pos += 1;
    let (major, ai) = (ib >> 5, ib & 0x1f);
    let arg = argument(b, pos, ai)?;
    match (major, arg) {
        (7, None) => Ok(Item::Break),
        (0 | 1 | 6, None) => Err(Bad::Malformed),
        (0 | 1, Some(_)) => Ok(Item::Value),
        (2 | 3, Some(n)) => {
            let n = usize::try_from(n).map_err(|_| Bad::Malformed)?;
            let s = b
                .get(*pos..pos.checked_add(n).ok_or(Bad::Malformed)?)
                .ok_or(Bad::Malformed)?;
            *pos += n;
            if major == 3 {
                core::str::from_utf8(s).map_err(|_| Bad::Malformed)?;
            }
            Ok(Item::Value)
        }
        (2 | 3, None) => loop {
            // Chunks: definite strings of the same major type, then a break.
            match b.get(*pos) {
                Some(0xff) => {
                    *pos += 1;
                    return Ok(Item::Value);
                }
                Some(&c) if c >> 5 == major && c & 0x1f != 31 => {
                    item(b, pos, depth + 1)?;
                }
                _ => return Err(Bad::Malformed),
            }
        },
        (4 | 5, Some(n)) => {
            let n = if major == 5 {
                n.checked_mul(2).ok_or(Bad::Malformed)?
            } else {
                n
            };
            for _ in 0..n {
                if item(b, pos, depth + 1)? != Item::Value {
                    return Err(Bad::Malformed);
                }
            }
            Ok(Item::Value)
        }
        (4 | 5, None) => {
            let mut count = 0u64;
            loop {
                match item(b, pos, depth + 1)? {
                    Item::Break if major == 4 || count.is_multiple_of(2) => return Ok(Item::Value),
                    Item::Break => return Err(Bad::Malformed),
                    Item::Value => count += 1,
                }
            }
        }
        (6, Some(_)) => match item(b, pos, depth + 1)? {
            Item::Value => Ok(Item::Value),
            Item::Break => Err(Bad::Malformed),
        },
        (7, Some(v)) => {
            // ai 24: a one-byte simple value, which must be 32 or more.
            if ai == 24 && v < 32 {
                return Err(Bad::Malformed);
            }
            Ok(Item::Value)
        }
        _ => Err(Bad::Malformed),
    }
}

// ---------------------------------------------------------------------------------------
// Structured mode.

/// A CBOR value the input describes.
#[derive(Clone, Debug)]
enum V {
    /// An unsigned integer, with its head: 0 shortest, 1..=4 forced to 1, 2, 4, 8 bytes.
    Uint(u64, u8),
    /// The negative integer -1 - n.
    Neg(u64),
    Bool(bool),
    Null,
    Undefined,
    /// A simple value other than false, true, null and undefined (0..=19 or 32..=255).
    Simple(u8),
    /// A float of 2, 4 or 8 bytes (raw bits).
    Float(Vec<u8>),
    Bytes(Vec<u8>),
    BytesIndef(Vec<Vec<u8>>),
    Text(String),
    TextIndef(Vec<String>),
    /// A definite text string that is not UTF-8.
    BadText(Vec<u8>),
    Array(Vec<V>, bool),
    Map(Vec<(V, V)>, bool),
    Tag(u64, Box<V>),
}

/// Every key a decoder knows.
const KEYS: [&str; 12] = [
    "image", "len", "off", "sha", "data", "upgrade", "hash", "confirm", "d", "slot", "query",
    "digests",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uint,
    Bool,
    Bytes,
    Text,
}

fn kind_of(key: &str) -> Option<Kind> {
    Some(match key {
        "image" | "len" | "off" | "slot" => Kind::Uint,
        "upgrade" | "confirm" => Kind::Bool,
        "sha" | "data" | "hash" | "digests" => Kind::Bytes,
        "d" | "query" => Kind::Text,
        _ => return None,
    })
}

fn gen_bytes(inp: &mut Input) -> Vec<u8> {
    let n = match inp.below(8) {
        0..=2 => inp.below(8),
        3 => 8 * inp.below(4), // resume digests
        4 | 5 => 32,
        6 => inp.below(64),
        _ => inp.below(600),
    };
    inp.bytes_padded(n as usize)
}

fn gen_text(inp: &mut Input) -> String {
    let n = inp.below(12) as usize;
    // Printable ASCII and, one byte in 16, a two-byte character.
    inp.bytes_padded(n)
        .iter()
        .map(|&b| {
            if b & 0xf0 == 0xf0 {
                char::from_u32(0x100 + u32::from(b)).unwrap_or('?')
            } else {
                char::from(b' ' + b % 95)
            }
        })
        .collect()
}

fn gen_uint(inp: &mut Input) -> V {
    let v = match inp.below(6) {
        0 | 1 => u64::from(inp.byte() % 24),
        2 => u64::from(inp.u16()),
        3 => u64::from(inp.u32()),
        4 => u64::from(u32::MAX) + u64::from(inp.byte()) - 128,
        _ => inp.u64(),
    };
    let width = if inp.one_in(4) {
        1 + inp.below(4) as u8
    } else {
        0
    };
    let v = match width {
        1 => v & 0xff,
        2 => v & 0xffff,
        3 => v & 0xffff_ffff,
        _ => v,
    };
    V::Uint(v, width)
}

fn gen_value(inp: &mut Input, natural: Option<Kind>, depth: u32) -> V {
    // Mostly the type the key wants, so that decodes succeed often.
    if let Some(k) = natural {
        if inp.below(4) != 0 {
            return match k {
                Kind::Uint => gen_uint(inp),
                Kind::Bool => V::Bool(inp.bool()),
                Kind::Bytes => V::Bytes(gen_bytes(inp)),
                Kind::Text => V::Text(gen_text(inp)),
            };
        }
    }
    let nested = depth < 3;
    match inp.below(if nested { 16 } else { 13 }) {
        0 => gen_uint(inp),
        1 => V::Neg(match inp.below(3) {
            0 => u64::from(inp.byte()),
            1 => u64::from(inp.u32()),
            _ => inp.u64(),
        }),
        2 => V::Bool(inp.bool()),
        3 => V::Null,
        4 => V::Undefined,
        5 => {
            let s = inp.byte();
            V::Simple(if (20..32).contains(&s) { s + 20 } else { s })
        }
        6 => {
            let n = [2, 4, 8][inp.below(3) as usize];
            V::Float(inp.bytes_padded(n))
        }
        7 => V::Bytes(gen_bytes(inp)),
        8 => V::BytesIndef((0..inp.below(4)).map(|_| gen_bytes(inp)).collect()),
        9 => V::Text(gen_text(inp)),
        10 => V::TextIndef((0..inp.below(4)).map(|_| gen_text(inp)).collect()),
        11 => {
            let mut b = gen_bytes(inp);
            let at = inp.below(b.len() as u32 + 1) as usize;
            b.insert(at, 0xff); // never valid UTF-8
            V::BadText(b)
        }
        12 => V::Text(KEYS[inp.below(KEYS.len() as u32) as usize].into()),
        13 => V::Array(
            (0..inp.below(5))
                .map(|_| gen_value(inp, None, depth + 1))
                .collect(),
            inp.bool(),
        ),
        14 => V::Map(
            (0..inp.below(4))
                .map(|_| {
                    (
                        gen_value(inp, None, depth + 1),
                        gen_value(inp, None, depth + 1),
                    )
                })
                .collect(),
            inp.bool(),
        ),
        _ => V::Tag(
            u64::from(inp.u16()),
            Box::new(gen_value(inp, None, depth + 1)),
        ),
    }
}

fn gen_key(inp: &mut Input) -> V {
    match inp.below(16) {
        0..=10 => V::Text(KEYS[inp.below(KEYS.len() as u32) as usize].into()),
        11 => {
            // A near miss: a known key with a character changed, added or dropped.
            let mut k: Vec<u8> = KEYS[inp.below(KEYS.len() as u32) as usize].into();
            match inp.below(3) {
                0 => {
                    let i = inp.below(k.len() as u32) as usize;
                    k[i] = k[i].to_ascii_uppercase();
                }
                1 => k.push(b'x'),
                _ => {
                    k.pop();
                }
            }
            V::Text(String::from_utf8(k).expect("ASCII"))
        }
        12 => V::Text(gen_text(inp)),
        // A known key as an indefinite string: not a text key to the decoders.
        13 => V::TextIndef(vec![KEYS[inp.below(KEYS.len() as u32) as usize].into()]),
        _ => gen_value(inp, None, 1),
    }
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode(e: &mut Encoder<Vec<u8>>, v: &V) {
    let ok = "encoding into a Vec";
    match v {
        V::Uint(n, 0) => {
            e.u64(*n).expect(ok);
        }
        V::Uint(n, w) => {
            let out = e.writer_mut();
            let bytes = n.to_be_bytes();
            let (ai, len) = match w {
                1 => (24, 1),
                2 => (25, 2),
                3 => (26, 4),
                _ => (27, 8),
            };
            out.push(ai);
            out.extend_from_slice(&bytes[8 - len..]);
        }
        V::Neg(n) => head(e.writer_mut(), 1, *n),
        V::Bool(b) => {
            e.bool(*b).expect(ok);
        }
        V::Null => {
            e.null().expect(ok);
        }
        V::Undefined => {
            e.undefined().expect(ok);
        }
        V::Simple(s) => {
            let out = e.writer_mut();
            if *s < 24 {
                out.push(0xe0 | s);
            } else {
                out.extend_from_slice(&[0xf8, *s]);
            }
        }
        V::Float(bits) => {
            let out = e.writer_mut();
            out.push(match bits.len() {
                2 => 0xf9,
                4 => 0xfa,
                _ => 0xfb,
            });
            out.extend_from_slice(bits);
        }
        V::Bytes(b) => {
            e.bytes(b).expect(ok);
        }
        V::BytesIndef(chunks) => {
            e.begin_bytes().expect(ok);
            for c in chunks {
                e.bytes(c).expect(ok);
            }
            e.end().expect(ok);
        }
        V::Text(s) => {
            e.str(s).expect(ok);
        }
        V::TextIndef(chunks) => {
            e.begin_str().expect(ok);
            for c in chunks {
                e.str(c).expect(ok);
            }
            e.end().expect(ok);
        }
        V::BadText(b) => {
            let out = e.writer_mut();
            head(out, 3, b.len() as u64);
            out.extend_from_slice(b);
        }
        V::Array(items, indef) => {
            if *indef {
                e.begin_array().expect(ok);
            } else {
                e.array(items.len() as u64).expect(ok);
            }
            for i in items {
                encode(e, i);
            }
            if *indef {
                e.end().expect(ok);
            }
        }
        V::Map(entries, indef) => {
            if *indef {
                e.begin_map().expect(ok);
            } else {
                e.map(entries.len() as u64).expect(ok);
            }
            for (k, v) in entries {
                encode(e, k);
                encode(e, v);
            }
            if *indef {
                e.end().expect(ok);
            }
        }
        V::Tag(t, inner) => {
            head(e.writer_mut(), 6, *t);
            encode(e, inner);
        }
    }
}

fn has_bad_text(v: &V) -> bool {
    match v {
        V::BadText(_) => true,
        V::Array(items, _) => items.iter().any(has_bad_text),
        V::Map(entries, _) => entries
            .iter()
            .any(|(k, v)| has_bad_text(k) || has_bad_text(v)),
        V::Tag(_, inner) => has_bad_text(inner),
        _ => false,
    }
}

/// A decoded field value, as the model predicts it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
    U(u32),
    B(bool),
    Bytes(Vec<u8>),
    T(String),
}

/// The model of `walk` with the fields of one decoder: the last value of each field, or the
/// error the walk stops at.
fn model(entries: &[(V, V)], fields: &[&'static str]) -> Result<Vec<Option<Got>>, BodyError> {
    let mut out = vec![None; fields.len()];
    for (k, v) in entries {
        let field = match k {
            V::BadText(_) => return Err(BodyError::Malformed),
            V::Text(s) => fields.iter().position(|f| f == s),
            // Not a text key: key and value skipped.
            _ => None,
        };
        let Some(i) = field else {
            if has_bad_text(k) || has_bad_text(v) {
                return Err(BodyError::Malformed);
            }
            continue;
        };
        let name = fields[i];
        let bad = Err(BodyError::BadField(name));
        out[i] = Some(match (kind_of(name).expect("a known key"), v) {
            (Kind::Uint, V::Uint(n, _)) => match u32::try_from(*n) {
                Ok(n) => Got::U(n),
                Err(_) => return bad,
            },
            (Kind::Bool, V::Bool(b)) => Got::B(*b),
            (Kind::Bytes, V::Bytes(b)) => Got::Bytes(b.clone()),
            (Kind::Text, V::Text(s)) => Got::T(s.clone()),
            (Kind::Text, V::BadText(_)) => return Err(BodyError::Malformed),
            _ => return bad,
        });
    }
    Ok(out)
}

fn u(g: &Option<Got>) -> Option<u32> {
    match g {
        Some(Got::U(n)) => Some(*n),
        None => None,
        Some(other) => unreachable!("model gave {other:?} for a uint field"),
    }
}

fn b(g: &Option<Got>) -> Option<bool> {
    match g {
        Some(Got::B(x)) => Some(*x),
        None => None,
        Some(other) => unreachable!("model gave {other:?} for a bool field"),
    }
}

fn bytes(g: &Option<Got>) -> Option<&[u8]> {
    match g {
        Some(Got::Bytes(x)) => Some(x),
        None => None,
        Some(other) => unreachable!("model gave {other:?} for a bytes field"),
    }
}

fn text(g: &Option<Got>) -> Option<&str> {
    match g {
        Some(Got::T(x)) => Some(x),
        None => None,
        Some(other) => unreachable!("model gave {other:?} for a text field"),
    }
}

/// An upload's fields, owned: image, len, off, sha, data, upgrade.
type OwnedUpload = (
    Option<u32>,
    Option<u32>,
    u32,
    Option<Vec<u8>>,
    Vec<u8>,
    bool,
);

/// What every decoder should answer for a map of `entries` (owned, for comparison).
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    upload: Result<OwnedUpload, BodyError>,
    state: Result<(Option<Vec<u8>>, bool), BodyError>,
    resume: Result<(u32, Vec<u8>, Vec<u8>), BodyError>,
    echo: Result<String, BodyError>,
    slot: Result<u32, BodyError>,
    query: Result<Option<String>, BodyError>,
    any: Result<(), BodyError>,
}

fn expected(entries: &[(V, V)]) -> Expected {
    let upload = model(entries, &["image", "len", "off", "sha", "data", "upgrade"]).and_then(|f| {
        let off = u(&f[2]).ok_or(BodyError::Missing("off"))?;
        let data = bytes(&f[4]).ok_or(BodyError::Missing("data"))?;
        let sha = bytes(&f[3]);
        if sha.is_some_and(|s| s.len() != 32) {
            return Err(BodyError::BadField("sha"));
        }
        Ok((
            u(&f[0]),
            u(&f[1]),
            off,
            sha.map(<[u8]>::to_vec),
            data.to_vec(),
            b(&f[5]).unwrap_or(false),
        ))
    });
    let state = model(entries, &["hash", "confirm"])
        .map(|f| (bytes(&f[0]).map(<[u8]>::to_vec), b(&f[1]).unwrap_or(false)));
    let resume = model(entries, &["len", "sha", "digests"]).and_then(|f| {
        let len = u(&f[0]).ok_or(BodyError::Missing("len"))?;
        let sha = bytes(&f[1]).ok_or(BodyError::Missing("sha"))?;
        let digests = bytes(&f[2]).ok_or(BodyError::Missing("digests"))?;
        if sha.len() != 32 {
            return Err(BodyError::BadField("sha"));
        }
        if digests.len() != len.div_ceil(BLOCK) as usize * DIGEST {
            return Err(BodyError::BadField("digests"));
        }
        Ok((len, sha.to_vec(), digests.to_vec()))
    });
    let echo = model(entries, &["d"]).and_then(|f| {
        text(&f[0])
            .map(str::to_owned)
            .ok_or(BodyError::Missing("d"))
    });
    let slot = model(entries, &["slot"]).map(|f| u(&f[0]).unwrap_or(1));
    let query = model(entries, &["query"]).map(|f| text(&f[0]).map(str::to_owned));
    let any = model(entries, &[]).map(|_| ());
    Expected {
        upload,
        state,
        resume,
        echo,
        slot,
        query,
        any,
    }
}

fn actual(a: &Answers<'_>) -> Expected {
    Expected {
        upload: a.upload.map(|u| {
            (
                u.image,
                u.len,
                u.off,
                u.sha.map(<[u8]>::to_vec),
                u.data.to_vec(),
                u.upgrade,
            )
        }),
        state: a.state.map(|s| (s.hash.map(<[u8]>::to_vec), s.confirm)),
        resume: a
            .resume
            .map(|r| (r.len, r.sha.to_vec(), r.digests.to_vec())),
        echo: a.echo.map(str::to_owned),
        slot: a.slot,
        query: a.query.map(|q| q.map(str::to_owned)),
        any: a.any,
    }
}

fn structured(inp: &mut Input) {
    let n = inp.below(10) as usize;
    let indefinite = inp.one_in(4);
    let entries: Vec<(V, V)> = (0..n)
        .map(|_| {
            let k = gen_key(inp);
            let natural = match &k {
                V::Text(s) => kind_of(s),
                _ => None,
            };
            let v = gen_value(inp, natural, 1);
            (k, v)
        })
        .collect();
    let mut e = Encoder::new(Vec::new());
    encode(&mut e, &V::Map(entries.clone(), indefinite));
    let body = e.into_writer();
    let want = expected(&entries);
    // The encoder's output is well-formed exactly when no text is bad UTF-8.
    let bad_utf8 = entries
        .iter()
        .any(|(k, v)| has_bad_text(k) || has_bad_text(v));
    assert_eq!(
        well_formed_map(&body),
        Some(!bad_utf8),
        "strict validator and generator disagree on {body:02x?}"
    );
    let a = decode_all(&body);
    trace!("structured {entries:?}\n  -> {:?}", want);
    check_any(&body, &a);
    assert_eq!(
        actual(&a),
        want,
        "decoders differ from the model on {body:02x?}"
    );

    // Damage: the result must be an error, `Malformed` when the intact body decoded.
    let mut bad = body.clone();
    match inp.below(4) {
        0 => return,
        1 if body.len() > 1 => bad.truncate(1 + inp.below(body.len() as u32 - 1) as usize),
        2 => bad.push(inp.byte()),
        3 if !indefinite && n > 0 => {
            // One entry more or fewer than the count says (the count is the first byte for
            // fewer than 24 entries).
            bad[0] = if inp.bool() { bad[0] + 1 } else { bad[0] - 1 };
        }
        _ => return,
    }
    let d = decode_all(&bad);
    check_any(&bad, &d);
    let got = actual(&d);
    let pairs = [
        (got.upload.as_ref().err(), want.upload.is_ok()),
        (got.state.as_ref().err(), want.state.is_ok()),
        (got.resume.as_ref().err(), want.resume.is_ok()),
        (got.echo.as_ref().err(), want.echo.is_ok()),
        (got.slot.as_ref().err(), want.slot.is_ok()),
        (got.query.as_ref().err(), want.query.is_ok()),
        (got.any.as_ref().err(), want.any.is_ok()),
    ];
    for (i, (err, intact_ok)) in pairs.into_iter().enumerate() {
        match err {
            None => panic!("decoder {i} accepts a damaged body {bad:02x?} (intact {body:02x?})"),
            Some(e) if intact_ok => assert_eq!(
                *e,
                BodyError::Malformed,
                "decoder {i}: damaged body {bad:02x?} refused as {e:?}"
            ),
            Some(_) => {}
        }
    }
}
