//! `smp_server`: a sequence of SMP packets answered by one `brickless_smp::Server` over the
//! engine's `Updater` on the flash model.
//!
//! The input picks one of the campaign's parts on its reduced 16-sector array
//! (`brickless_campaign::reduced_part` / `reduced_layout`), swap or overwrite, application or
//! recovery mode (the server configuration of `brickless_devices::mcu`: `buf_size` 4096,
//! `buf_count` 4), what the flash holds at the start (nothing; a running image; a staged one
//! too; an update pending; after the boot that installs it, a trial with swap), the response
//! buffer (4104 bytes or the documented minimum, `MIN_RESPONSE`) and whether the `Updater`
//! lives for the whole session or is made afresh per packet (as `brickless_devices::mcu`
//! does). Then up to 32 packets, each one of:
//! - raw: length-prefixed bytes, header included;
//! - framed: a header from input fields (any op, version, flags, a group and command near
//!   the served ones) with a correct length (one in eight wrong) and raw body bytes;
//! - generated: a well-formed request with input-chosen fields: echo, reset, parameters,
//!   bootloader info, state read, test/confirm by the hash of a known image (or another),
//!   upload chunks of a known image from the offset the server last answered (or another;
//!   with `len`, `sha`, `image`, `upgrade` right, wrong or absent), erase, slot info, and
//!   the brickless group's capabilities and resume (by the block digests of a known image,
//!   some wrong).
//!
//! Images are unsigned MCUboot images checked by their SHA-256 TLV (`HashOnly`, cheap): the
//! fuzzer cannot forge a new valid one, but uploads of the known ones go through and get
//! installed. An OS reset that the server accepts reboots the device through the engine's
//! `BootLoader` (so a pending upload becomes a trial), with a new server whose mode is what
//! the boot decided.
//!
//! What must hold, for every packet:
//! - nothing panics;
//! - `handle` answers exactly the packets whose header parses as a request (read or write);
//!   the answer fits the buffer, is at least a header, and its header parses, has the
//!   response op of the request's, the request's version, flags, group, sequence number and
//!   command, and the body length; the body is exactly one CBOR map (minicbor's `skip`
//!   consumes all of it);
//! - a packet that is not a well-formed request (length field not the body's, or a body the
//!   command's decoder refuses, decoded here with the same `brickless_smp::request`
//!   functions) is answered `{"rc": 3}` and makes no flash operation; an unsupported
//!   group/command/op is answered `{"rc": 8}` and makes none; only a state write, an upload,
//!   and an erase of slot 1 may program or erase flash (a resume only reads); the reset flag
//!   is set exactly for an accepted OS reset; the parameters are the configured ones;
//! - without power cuts no flash operation fails: no answer carries an image group flash
//!   error (11, 12, 13) or `MGMT_ERR_EUNKNOWN`;
//! - an upload or resume answered `"match": true` left the SHA-256 of one of the `sha` fields
//!   sent in the staging area's first `off` bytes.
use std::collections::HashSet;
use std::sync::OnceLock;

use brickless_boot::{
    BootDecision, BootLoader, Exec, ImageCheck, ImageInfo, ImageVersion, Layout, StrategyKind,
    Updater, UpgradeMode,
};
use brickless_campaign::{reduced_layout, reduced_part, CAMPAIGN_PARTS};
use brickless_flash::Part;
use brickless_flash_model::SimFlash;
use brickless_image::sign::{sign_image, SecurityCounter, SignOptions};
use brickless_image::{verify_image, SliceFlash};
use brickless_smp::header::{brickless, group, image, os};
use brickless_smp::request::{self, Resume, StateWrite, Upload};
use brickless_smp::server::MIN_RESPONSE;
use brickless_smp::{Header, Mode, Op, Server, ServerConfig, Version, HEADER_LEN};
use embedded_storage::nor_flash::ReadNorFlash;
use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use sha2::{Digest, Sha256};

use crate::input::Input;
use crate::trace;

/// `buf_size` of `brickless_devices::mcu`.
const BUF_SIZE: u32 = 4096;
/// Packets per input at most.
const MAX_PACKETS: u32 = 32;

fn config(mode: Mode) -> ServerConfig {
    ServerConfig {
        buf_size: BUF_SIZE,
        buf_count: 4,
        mode,
    }
}

/// MCUboot verification without signatures: structure and SHA-256 TLV (what
/// `McubootCheck` does before the signature), so a check costs one hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct HashOnly;

impl<F: ReadNorFlash> ImageCheck<F> for HashOnly {
    fn check(&mut self, flash: &mut F, offset: u32, max_size: u32) -> Option<ImageInfo> {
        let v = verify_image(flash, offset, max_size, &[]).ok()?;
        Some(ImageInfo {
            version: v.header.version,
            security_counter: v.security_counter.unwrap_or(0),
            size: v.tlv_end,
            hash: v.hash,
            exec: Exec::from_header(&v.header),
        })
    }
}

/// A known image: its bytes, what the check says of it, and the SHA-256 of the file (what a
/// client sends as the upload's `sha`).
pub struct Known {
    pub bytes: Vec<u8>,
    pub info: ImageInfo,
    pub file_sha: [u8; 32],
}

/// (major, minor, security counter, payload bytes, not bootable)
const IMAGES: [(u8, u8, u32, usize, bool); 4] = [
    (1, 0, 1, 1200, false), // A: the running image of the setups
    (1, 1, 2, 2000, false), // B: the update
    (0, 9, 0, 300, false),  // C: a downgrade
    (2, 0, 3, 500, true),   // D: newer, but data, not code (NON_BOOTABLE)
];

/// Start states.
const SETUPS: u32 = 5;

/// One reduced part, a strategy, its known images and the flash of each start state.
pub struct Bench {
    pub part: &'static Part,
    pub layout: Layout,
    pub images: Vec<Known>,
    pub setups: Vec<SimFlash>,
}

fn benches() -> &'static [Bench] {
    static BENCHES: OnceLock<Vec<Bench>> = OnceLock::new();
    BENCHES.get_or_init(|| {
        let mut out = Vec::new();
        for name in CAMPAIGN_PARTS {
            let part = reduced_part(brickless_flash::part(name).expect("campaign part"));
            for strategy in [StrategyKind::Swap, StrategyKind::Overwrite] {
                let layout = reduced_layout(part, strategy).expect("reduced layout");
                let images = IMAGES
                    .iter()
                    .map(|&(major, minor, counter, payload, non_bootable)| {
                        known(part, major, minor, counter, payload, non_bootable)
                    })
                    .collect::<Vec<_>>();
                let setups = (0..SETUPS)
                    .map(|s| setup(part, layout, &images, s))
                    .collect();
                out.push(Bench {
                    part,
                    layout,
                    images,
                    setups,
                });
            }
        }
        out
    })
}

fn known(
    part: &Part,
    major: u8,
    minor: u8,
    counter: u32,
    payload: usize,
    non_bootable: bool,
) -> Known {
    let opts = SignOptions {
        version: ImageVersion {
            major,
            minor,
            revision: 0,
            build: 0,
        },
        pad_header: true,
        align: part.geometry.write_unit.clamp(1, 32),
        security_counter: Some(SecurityCounter::Value(counter)),
        non_bootable,
        ..SignOptions::default()
    };
    let body: Vec<u8> = (0..payload)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(major ^ minor))
        .collect();
    let bytes = sign_image(&body, None, &opts).expect("unsigned image options are valid");
    let info = HashOnly
        .check(&mut SliceFlash::new(&bytes), 0, bytes.len() as u32)
        .expect("a built image verifies");
    let file_sha = Sha256::digest(&bytes).into();
    Known {
        bytes,
        info,
        file_sha,
    }
}

/// The flash of start state `s`: 0 erased; 1 image A in the primary slot; 2 and B staged;
/// 3 and an update requested (test with swap, permanent with overwrite); 4 after the boot
/// that installs it (a trial of B with swap, B confirmed with overwrite).
fn setup(part: &'static Part, layout: Layout, images: &[Known], s: u32) -> SimFlash {
    let mut flash = SimFlash::new(part);
    if s >= 1 {
        flash
            .preload(layout.spec().primary.start, &images[0].bytes)
            .expect("primary slot mapped");
    }
    if s >= 2 {
        flash
            .preload(layout.staging().start, &images[1].bytes)
            .expect("staging area mapped");
    }
    if s >= 3 {
        let mode = if layout.strategy().can_revert() {
            UpgradeMode::Test
        } else {
            UpgradeMode::Permanent
        };
        Updater::new(&mut flash, layout, HashOnly)
            .request_upgrade(mode)
            .expect("setup: the request of a newer valid image");
    }
    if s >= 4 {
        let mut buf = [0u8; 1024];
        let d = BootLoader::new(&mut flash, layout, HashOnly, &mut buf)
            .and_then(|mut b| b.boot())
            .expect("setup: the boot that installs");
        assert!(matches!(d, BootDecision::Boot(_)), "setup: boots {d:?}");
    }
    flash
}

/// What a packet is to the server, worked out with the same decoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Not a request header: no answer.
    NoAnswer,
    /// The length field is not the body's, or the command's decoder refuses the body.
    BadRequest,
    /// A group/command/op the server does not serve.
    Unsupported,
    /// Decodes: `writes` when it may program or erase flash, `reset` for an OS reset.
    Good { writes: bool, reset: bool },
}

fn classify(packet: &[u8]) -> Class {
    let Ok(h) = Header::parse(packet) else {
        return Class::NoAnswer;
    };
    if h.op.response().is_none() {
        return Class::NoAnswer;
    }
    let body = &packet[HEADER_LEN..];
    if usize::from(h.len) != body.len() {
        return Class::BadRequest;
    }
    let write = h.op == Op::Write;
    let good = |ok: bool, writes: bool, reset: bool| {
        if ok {
            Class::Good { writes, reset }
        } else {
            Class::BadRequest
        }
    };
    match (h.group, h.command, write) {
        (group::OS, os::ECHO, _) => good(request::echo(body).is_ok(), false, false),
        (group::OS, os::RESET, true) => good(request::any_map(body).is_ok(), false, true),
        (group::OS, os::MCUMGR_PARAMS, false) => good(request::any_map(body).is_ok(), false, false),
        (group::OS, os::BOOTLOADER_INFO, false) => {
            good(request::bootloader_query(body).is_ok(), false, false)
        }
        (group::IMAGE, image::STATE, false) => good(request::any_map(body).is_ok(), false, false),
        (group::IMAGE, image::STATE, true) => good(StateWrite::decode(body).is_ok(), true, false),
        (group::IMAGE, image::UPLOAD, true) => good(Upload::decode(body).is_ok(), true, false),
        (group::IMAGE, image::ERASE, true) => match request::erase_slot(body) {
            Ok(slot) => Class::Good {
                writes: slot == 1,
                reset: false,
            },
            Err(_) => Class::BadRequest,
        },
        (group::IMAGE, image::SLOT_INFO, false) => {
            good(request::any_map(body).is_ok(), false, false)
        }
        (group::BRICKLESS, brickless::CAPS, false) => {
            good(request::any_map(body).is_ok(), false, false)
        }
        (group::BRICKLESS, brickless::RESUME, true) => {
            good(Resume::decode(body).is_ok(), false, false)
        }
        _ => Class::Unsupported,
    }
}

/// `{"rc": n}` as the server encodes it.
fn rc_body(n: u8) -> [u8; 5] {
    [0xa1, 0x62, b'r', b'c', n]
}

/// The top-level entries of a response map with unsigned or boolean values.
#[derive(Debug, Default)]
struct Fields {
    off: Option<u64>,
    rc: Option<u64>,
    matched: Option<bool>,
    /// `err: {group, rc}` (SMP v2 group error).
    err: Option<(u64, u64)>,
    buf_size: Option<u64>,
    buf_count: Option<u64>,
}

fn fields(body: &[u8]) -> Fields {
    fn uint(d: &mut Decoder<'_>) -> Option<u64> {
        match d.datatype().ok()? {
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().ok(),
            _ => None,
        }
    }
    let mut f = Fields::default();
    let mut d = Decoder::new(body);
    let Ok(Some(n)) = d.map() else {
        return f;
    };
    for _ in 0..n {
        let Ok(key) = d.str() else {
            return f;
        };
        let pos = d.position();
        match key {
            "off" => f.off = uint(&mut d),
            "rc" => f.rc = uint(&mut d),
            "buf_size" => f.buf_size = uint(&mut d),
            "buf_count" => f.buf_count = uint(&mut d),
            "match" => f.matched = d.bool().ok(),
            "err" => {
                let mut g = None;
                let mut r = None;
                if let Ok(Some(m)) = d.map() {
                    for _ in 0..m {
                        match d.str() {
                            Ok("group") => g = uint(&mut d),
                            Ok("rc") => r = uint(&mut d),
                            _ => break,
                        }
                    }
                }
                f.err = g.zip(r);
            }
            _ => {}
        }
        // Whatever was read, carry on after the value.
        d.set_position(pos);
        if d.skip().is_err() {
            return f;
        }
    }
    f
}

/// What a run did (for tests that check the harness is not vacuous).
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub packets: u32,
    pub answered: u32,
    /// Packets refused as bad requests (checked: no flash operation).
    pub bad_checked: u32,
    /// Packets that programmed or erased flash.
    pub flash_changes: u32,
    /// Uploads answered `"match": true` (checked against the staging area).
    pub matched: u32,
    /// Reboots after an accepted OS reset.
    pub reboots: u32,
    /// Reboots into a trial.
    pub trials: u32,
}

pub fn run(data: &[u8]) {
    run_report(data);
}

/// The session state the generator keeps.
struct Session {
    /// The offset the server last answered to an upload.
    next_off: u32,
    /// Every `sha` sent in a decodable upload or resume.
    shas: HashSet<[u8; 32]>,
}

pub fn run_report(data: &[u8]) -> Report {
    let mut inp = Input::new(data);
    let all = benches();
    let bench = &all[inp.below(all.len() as u32) as usize];
    let layout = bench.layout;
    let mut mode = if inp.one_in(4) {
        Mode::Recovery
    } else {
        Mode::Application
    };
    let start = inp.below(SETUPS);
    let rsp_len = if inp.one_in(4) {
        MIN_RESPONSE
    } else {
        BUF_SIZE as usize + HEADER_LEN
    };
    let per_packet_updater = inp.bool();
    trace!(
        "{} {:?}, {mode:?}, setup {start}, response buffer {rsp_len}, fresh updater {per_packet_updater}",
        bench.part.name,
        layout.strategy()
    );
    let mut updater = Updater::new(bench.setups[start as usize].clone(), layout, HashOnly);
    let mut server = Server::new(config(mode));
    let mut rsp = vec![0u8; rsp_len];
    let mut s = Session {
        next_off: 0,
        shas: HashSet::new(),
    };
    let mut report = Report::default();

    while !inp.is_empty() && report.packets < MAX_PACKETS {
        let packet = next_packet(&mut inp, bench, &mut s);
        report.packets += 1;
        let class = classify(&packet);
        let body = packet.get(HEADER_LEN..).unwrap_or_default();
        let sha = match (Upload::decode(body), Resume::decode(body)) {
            (Ok(u), _) => u.sha,
            (_, Ok(r)) => Some(r.sha),
            _ => None,
        };
        if let Some(sha) = sha {
            s.shas
                .insert(sha.try_into().expect("a decoded sha is 32 bytes"));
        }
        if per_packet_updater {
            updater = Updater::new(updater.into_flash(), layout, HashOnly);
        }
        let ops = updater.flash().op_count();
        let out = server.handle(&mut updater, &packet, &mut rsp);
        let changed = updater.flash().op_count() != ops;
        trace!(
            "packet {} ({} bytes, {class:?}): {:?}, flash ops {}",
            report.packets,
            packet.len(),
            out.map(|o| (o.len, o.reset, &rsp[HEADER_LEN..o.len.max(HEADER_LEN)])),
            updater.flash().op_count() - ops
        );
        report.flash_changes += u32::from(changed);

        let Some(out) = out else {
            assert_eq!(class, Class::NoAnswer, "a request got no answer");
            assert!(!changed, "a packet that got no answer changed flash");
            continue;
        };
        report.answered += 1;
        assert_ne!(class, Class::NoAnswer, "a non-request was answered");
        let req = Header::parse(&packet).expect("classified as a request");
        check_response(&req, &rsp, out.len);
        let body = &rsp[HEADER_LEN..out.len];
        let f = fields(body);
        match class {
            Class::BadRequest => {
                report.bad_checked += 1;
                assert_eq!(body, rc_body(3), "a malformed request not answered EINVAL");
                assert!(!changed, "a malformed request changed flash");
            }
            Class::Unsupported => {
                assert_eq!(
                    body,
                    rc_body(8),
                    "an unsupported request not answered ENOTSUP"
                );
                assert!(!changed, "an unsupported request changed flash");
            }
            Class::Good { writes, reset } => {
                assert!(
                    writes || !changed,
                    "a request that only reads changed flash"
                );
                assert_eq!(out.reset, reset, "reset flag");
                if (req.group, req.command) == (group::OS, os::MCUMGR_PARAMS) {
                    assert_eq!(
                        (f.buf_size, f.buf_count),
                        (Some(u64::from(BUF_SIZE)), Some(4)),
                        "parameters"
                    );
                }
            }
            Class::NoAnswer => unreachable!(),
        }
        if !matches!(class, Class::Good { .. }) {
            assert!(!out.reset, "reset flag on {class:?}");
        }
        // No fault is injected: a flash error means the server misused the flash.
        if let Some((_, rc)) = f.err {
            assert!(
                !(11..=13).contains(&rc),
                "image group flash error {rc} without a fault: {body:02x?}"
            );
        }
        assert_ne!(f.rc, Some(1), "MGMT_ERR_EUNKNOWN without a fault");

        let moves = [
            (group::IMAGE, image::UPLOAD, Op::Write),
            (group::BRICKLESS, brickless::RESUME, Op::Write),
        ];
        if moves.contains(&(req.group, req.command, req.op)) {
            if let Some(off) = f.off {
                s.next_off = u32::try_from(off).expect("an offset answered fits u32");
                if f.matched == Some(true) {
                    let mut staged = vec![0u8; s.next_off as usize];
                    updater
                        .flash()
                        .read_abs(layout.staging().start, &mut staged)
                        .expect("the staging area reads back");
                    let sha: [u8; 32] = Sha256::digest(&staged).into();
                    assert!(
                        s.shas.contains(&sha),
                        "answered match, but the staging area does not hash to any sha sent"
                    );
                    report.matched += 1;
                }
            }
        }

        if out.reset {
            // The device resets after the answer: the engine's boot, then the application or
            // recovery, with RAM (the upload session) lost.
            let mut flash = updater.into_flash();
            let mut buf = [0u8; 1024];
            let d =
                BootLoader::new(&mut flash, layout, HashOnly, &mut buf).and_then(|mut b| b.boot());
            trace!("reboot: {d:?}");
            mode = match d {
                Ok(BootDecision::Boot(t)) => {
                    report.trials += u32::from(t.trial);
                    Mode::Application
                }
                _ => Mode::Recovery,
            };
            report.reboots += 1;
            server = Server::new(config(mode));
            updater = Updater::new(flash, layout, HashOnly);
            s.next_off = 0;
        }
    }
    report
}

/// The answer's header echoes the request and its body is one CBOR map of the stated length.
fn check_response(req: &Header, rsp: &[u8], len: usize) {
    assert!(
        (HEADER_LEN..=rsp.len()).contains(&len),
        "answer of {len} bytes in a buffer of {}",
        rsp.len()
    );
    let h = Header::parse(rsp).expect("the answer's header parses");
    assert_eq!(Some(h.op), req.op.response(), "answer op");
    assert_eq!(usize::from(h.len), len - HEADER_LEN, "answer length field");
    assert_eq!(
        (h.version, h.flags, h.group, h.seq, h.command),
        (req.version, req.flags, req.group, req.seq, req.command),
        "answer header does not echo the request"
    );
    let body = &rsp[HEADER_LEN..len];
    let mut d = Decoder::new(body);
    assert!(
        matches!(d.datatype(), Ok(Type::Map)),
        "answer body is not a definite map: {body:02x?}"
    );
    assert!(d.skip().is_ok(), "answer body is not CBOR: {body:02x?}");
    assert_eq!(
        d.position(),
        body.len(),
        "bytes after the answer's map: {body:02x?}"
    );
}

// ---------------------------------------------------------------------------------------
// Packet generation.

fn header(version: Version, op: Op, flags: u8, len: usize, grp: u16, seq: u8, cmd: u8) -> Vec<u8> {
    Header {
        op,
        version,
        flags,
        len: u16::try_from(len).unwrap_or(u16::MAX),
        group: grp,
        seq,
        command: cmd,
    }
    .to_bytes()
    .to_vec()
}

fn next_packet(inp: &mut Input, bench: &Bench, s: &mut Session) -> Vec<u8> {
    match inp.below(4) {
        0 => {
            // Raw: a length, then the packet.
            let n = inp.below(BUF_SIZE + 64) as usize;
            inp.bytes(n).to_vec()
        }
        1 => {
            // Framed: header fields from the input, raw body.
            let b0 = inp.byte();
            let b0 = if inp.one_in(8) { b0 } else { b0 & 0x1f };
            let grp = match inp.below(8) {
                0..=2 => group::OS,
                3..=5 => group::IMAGE,
                6 => group::BRICKLESS,
                _ => inp.u16(),
            };
            let cmd = if inp.one_in(8) {
                inp.byte()
            } else {
                inp.below(10) as u8
            };
            let flags = if inp.one_in(8) { inp.byte() } else { 0 };
            let seq = inp.byte();
            let n = inp.below(BUF_SIZE) as usize;
            let body = inp.bytes(n);
            let len = if inp.one_in(8) {
                inp.u16()
            } else {
                body.len() as u16
            };
            let mut p = vec![b0, flags];
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&grp.to_be_bytes());
            p.extend_from_slice(&[seq, cmd]);
            p.extend_from_slice(body);
            p
        }
        _ => generated(inp, bench, s),
    }
}

fn text(inp: &mut Input, max: u32) -> String {
    let n = inp.below(max) as usize;
    inp.bytes_padded(n)
        .iter()
        .map(|&b| char::from(b' ' + b % 95))
        .collect()
}

/// A well-formed request (mostly with the op its command wants).
fn generated(inp: &mut Input, bench: &Bench, s: &mut Session) -> Vec<u8> {
    let version = if inp.bool() { Version::V2 } else { Version::V1 };
    let seq = inp.byte();
    let mut e = Encoder::new(Vec::new());
    let ok = "encoding into a Vec";
    let (grp, cmd, write) = match inp.below(12) {
        0 => {
            let t = if inp.one_in(8) {
                "x".repeat(3000 + inp.below(1100) as usize)
            } else {
                text(inp, 64)
            };
            e.map(1).and_then(|e| e.str("d")?.str(&t)).expect(ok);
            (group::OS, os::ECHO, inp.bool())
        }
        1 => {
            e.map(0).expect(ok);
            (group::OS, os::RESET, true)
        }
        2 => {
            e.map(0).expect(ok);
            (group::OS, os::MCUMGR_PARAMS, false)
        }
        3 => {
            match inp.below(3) {
                0 => e.map(0).map(|_| ()),
                1 => e
                    .map(1)
                    .and_then(|e| e.str("query")?.str("mode"))
                    .map(|_| ()),
                _ => e
                    .map(1)
                    .and_then(|e| e.str("query")?.str(&text(inp, 8)))
                    .map(|_| ()),
            }
            .expect(ok);
            (group::OS, os::BOOTLOADER_INFO, false)
        }
        4 => {
            e.map(0).expect(ok);
            (group::IMAGE, image::STATE, false)
        }
        5 => {
            let which = inp.below(8) as usize;
            let hash: Option<Vec<u8>> = match which {
                0..=3 => Some(bench.images[which].info.hash.to_vec()),
                4 => Some(bench.images[inp.below(4) as usize].file_sha.to_vec()),
                5 => Some(inp.bytes_padded(32)),
                _ => None,
            };
            let confirm = inp.bool();
            e.map(1 + u64::from(hash.is_some())).expect(ok);
            if let Some(h) = &hash {
                e.str("hash").and_then(|e| e.bytes(h)).expect(ok);
            }
            e.str("confirm").and_then(|e| e.bool(confirm)).expect(ok);
            (group::IMAGE, image::STATE, true)
        }
        6 | 7 => {
            upload(inp, bench, s, &mut e);
            (group::IMAGE, image::UPLOAD, true)
        }
        8 => {
            match inp.below(4) {
                0 => e.map(0).map(|_| ()),
                1 => e.map(1).and_then(|e| e.str("slot")?.u8(0)).map(|_| ()),
                _ => e.map(1).and_then(|e| e.str("slot")?.u8(1)).map(|_| ()),
            }
            .expect(ok);
            (group::IMAGE, image::ERASE, true)
        }
        9 => {
            e.map(0).expect(ok);
            (group::IMAGE, image::SLOT_INFO, false)
        }
        10 => {
            e.map(0).expect(ok);
            (group::BRICKLESS, brickless::CAPS, false)
        }
        _ => {
            resume(inp, bench, &mut e);
            (group::BRICKLESS, brickless::RESUME, true)
        }
    };
    // One in eight with the other op.
    let write = write != inp.one_in(8);
    let op = if write { Op::Write } else { Op::Read };
    let body = e.into_writer();
    let mut p = header(version, op, 0, body.len(), grp, seq, cmd);
    p.extend_from_slice(&body);
    p
}

/// An upload chunk: mostly of a known image from where the server said to go on.
fn upload(inp: &mut Input, bench: &Bench, s: &Session, e: &mut Encoder<Vec<u8>>) {
    let ok = "encoding into a Vec";
    let garbage;
    let (img, sha): (&[u8], [u8; 32]) = if inp.one_in(8) {
        // Not an image (or an image with a bad tail): refused at the start, or staged but
        // never valid.
        let n = 32 + inp.below(3000) as usize;
        let mut g = bench.images[1].bytes.clone();
        g.resize(n, 0x5a);
        let cut = inp.below(n as u32) as usize;
        g[cut] ^= 1 | inp.byte();
        garbage = g;
        (&garbage, Sha256::digest(&garbage).into())
    } else {
        let k = &bench.images[inp.below(bench.images.len() as u32) as usize];
        (&k.bytes, k.file_sha)
    };
    let total = img.len() as u32;
    let off = match inp.below(8) {
        0..=4 => s.next_off,
        5 | 6 => 0,
        _ => inp.below(total + 64),
    };
    let rest = total.saturating_sub(off);
    let chunk = match inp.below(4) {
        0 => rest,
        1 => inp.below(rest + 1),
        _ => 64 * (1 + inp.below(40)),
    }
    .min(rest);
    let data = img
        .get(off as usize..(off + chunk) as usize)
        .unwrap_or_default();
    let len = if off == 0 || inp.one_in(8) {
        Some(match inp.below(16) {
            0 => 0,
            1 => inp.u32(),
            2 => total + 1 + inp.below(64),
            _ => total,
        })
    } else {
        None
    };
    let sha = if (off == 0 && !inp.one_in(4)) || inp.one_in(16) {
        let mut sha = sha;
        if inp.one_in(8) {
            sha[0] ^= 1;
        }
        Some(sha)
    } else {
        None
    };
    let image_no = if inp.one_in(4) {
        Some(inp.below(3))
    } else {
        None
    };
    let upgrade = inp.one_in(4);
    let n = 2
        + u64::from(len.is_some())
        + u64::from(sha.is_some())
        + u64::from(image_no.is_some())
        + u64::from(upgrade);
    e.map(n).expect(ok);
    if let Some(i) = image_no {
        e.str("image").and_then(|e| e.u32(i)).expect(ok);
    }
    if let Some(l) = len {
        e.str("len").and_then(|e| e.u32(l)).expect(ok);
    }
    e.str("off").and_then(|e| e.u32(off)).expect(ok);
    if let Some(h) = sha {
        e.str("sha").and_then(|e| e.bytes(&h)).expect(ok);
    }
    e.str("data").and_then(|e| e.bytes(data)).expect(ok);
    if upgrade {
        e.str("upgrade").and_then(|e| e.bool(true)).expect(ok);
    }
}

/// A resume of a known image: its length, file SHA-256 and block digests (one in four with a
/// wrong digest or length).
fn resume(inp: &mut Input, bench: &Bench, e: &mut Encoder<Vec<u8>>) {
    let ok = "encoding into a Vec";
    let k = &bench.images[inp.below(bench.images.len() as u32) as usize];
    let mut len = k.bytes.len() as u32;
    let mut digests: Vec<u8> = k
        .bytes
        .chunks(brickless::BLOCK as usize)
        .flat_map(|b| Sha256::digest(b)[..brickless::DIGEST].to_vec())
        .collect();
    match inp.below(8) {
        0 => {
            let i = inp.below(digests.len() as u32) as usize;
            digests[i] ^= 1;
        }
        1 => len = inp.below(len) + 1,
        _ => {}
    }
    let r = Resume {
        len,
        sha: &k.file_sha,
        digests: &digests,
    };
    e.map(3)
        .and_then(|e| e.str("len")?.u32(r.len))
        .and_then(|e| e.str("sha")?.bytes(r.sha))
        .and_then(|e| e.str("digests")?.bytes(r.digests))
        .expect(ok);
}
