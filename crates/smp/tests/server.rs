//! The server over the real engine on the flash model, request by request: malformed input
//! changes nothing, offsets out of order and repeats write nothing wrong, a damaged chunk
//! never becomes an accepted image, and an upload cut by power resumes from the flash.
use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{default_layout, Phase, StrategyKind, Updater};
use brickless_campaign::kit::McubootKit;
use brickless_flash_model::SimFlash;
use brickless_image::ImageVersion;
use brickless_smp::header::{brickless, group, image, os};
use brickless_smp::{
    Board, Header, Mode, NoBoard, Op, Outcome, ProtectFailure, ProtectionStatus, Server,
    ServerConfig, Version, WriteProtection, HEADER_LEN,
};
use minicbor::Encoder;
use sha2::{Digest, Sha256};

struct Rig {
    flash: SimFlash,
    layout: brickless_boot::Layout,
    kit: McubootKit,
    server: Server,
    seq: u8,
}

impl Rig {
    fn new(part: &str, mode: Mode) -> Rig {
        let part = brickless_flash::part(part).unwrap();
        Rig {
            flash: SimFlash::new(part),
            layout: default_layout(&part.geometry, StrategyKind::Swap).unwrap(),
            kit: McubootKit::new(),
            server: Server::new(ServerConfig {
                buf_size: 4096,
                buf_count: 4,
                mode,
            }),
            seq: 0,
        }
    }

    /// Sends a raw packet; the answer's header and body.
    fn packet(&mut self, packet: &[u8]) -> Option<(Header, Vec<u8>)> {
        self.packet_with(&mut NoBoard, packet)
            .map(|(_, h, b)| (h, b))
    }

    /// Sends a raw packet to a server with `board`'s services; the outcome, the answer's
    /// header and body.
    fn packet_with(
        &mut self,
        board: &mut dyn Board,
        packet: &[u8],
    ) -> Option<(Outcome, Header, Vec<u8>)> {
        let keys = self.kit.keys;
        let mut u = Updater::new(&mut self.flash, self.layout, McubootCheck { keys });
        let mut out = vec![0u8; 8192];
        let o = self.server.handle_with(&mut u, board, packet, &mut out)?;
        let h = Header::parse(&out[..o.len]).unwrap();
        assert_eq!(
            usize::from(h.len),
            o.len - HEADER_LEN,
            "the length field is the body's"
        );
        Some((o, h, out[HEADER_LEN..o.len].to_vec()))
    }

    fn request(&mut self, op: Op, grp: u16, cmd: u8, body: &[u8]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let h = Header {
            op,
            version: Version::V2,
            flags: 0,
            len: body.len() as u16,
            group: grp,
            seq: self.seq,
            command: cmd,
        };
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(body);
        let (rh, rb) = self.packet(&p).expect("an answer");
        assert_eq!((rh.seq, rh.group, rh.command), (h.seq, h.group, h.command));
        assert_eq!(Some(rh.op), op.response());
        rb
    }

    fn upload(&mut self, off: u32, data: &[u8], first: Option<(u32, &[u8; 32])>) -> Vec<u8> {
        let mut body = Vec::new();
        let mut e = Encoder::new(&mut body);
        e.map(if first.is_some() { 4 } else { 2 }).unwrap();
        if let Some((len, sha)) = first {
            e.str("len").unwrap().u32(len).unwrap();
            e.str("sha").unwrap().bytes(sha).unwrap();
        }
        e.str("off").unwrap().u32(off).unwrap();
        e.str("data").unwrap().bytes(data).unwrap();
        self.request(Op::Write, group::IMAGE, image::UPLOAD, &body)
    }

    fn image(&self, major: u8, size: u32) -> Vec<u8> {
        self.kit.build(
            ImageVersion::new(major, 0, 0, 0),
            0,
            size,
            u64::from(major),
            32,
        )
    }

    fn updater(&mut self) -> Updater<&mut SimFlash, McubootCheck<'static>> {
        let keys = self.kit.keys;
        Updater::new(&mut self.flash, self.layout, McubootCheck { keys })
    }
}

/// The value of `key` in a flat CBOR map answer, as text for easy comparison.
fn field(body: &[u8], key: &str) -> Option<String> {
    let mut d = minicbor::Decoder::new(body);
    let n = d.map().ok()??;
    for _ in 0..n {
        let k = d.str().ok()?;
        let v = match d.datatype().ok()? {
            minicbor::data::Type::Bool => d.bool().ok()?.to_string(),
            minicbor::data::Type::String => d.str().ok()?.to_string(),
            minicbor::data::Type::Map => {
                let start = d.position();
                d.skip().ok()?;
                format!("{:?}", &body[start..d.position()])
            }
            _ => d.u64().ok()?.to_string(),
        };
        if k == key {
            return Some(v);
        }
    }
    None
}

#[test]
fn malformed_packets_and_bodies_get_errors_and_change_nothing() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    let ops = rig.flash.op_count();
    // Not requests: too short, a response, reserved version: no answer at all.
    assert!(rig.packet(&[0x0a, 0, 0]).is_none());
    assert!(rig.packet(&[0x0b, 0, 0, 1, 0, 0, 0, 0, 0xa0]).is_none());
    assert!(rig.packet(&[0x12, 0, 0, 1, 0, 0, 0, 0, 0xa0]).is_none());
    // A length field that disagrees with the body: EINVAL.
    let (_, b) = rig.packet(&[0x0a, 0, 0, 9, 0, 0, 1, 0, 0xa0]).unwrap();
    assert_eq!(field(&b, "rc").as_deref(), Some("3"));
    // Bodies that are not what the command takes.
    for (grp, cmd, body) in [
        (group::IMAGE, image::UPLOAD, &[0x80][..]), // an array
        (
            group::IMAGE,
            image::UPLOAD,
            &[0xa1, 0x63, b'o', b'f', b'f'][..],
        ), // truncated
        (
            group::IMAGE,
            image::UPLOAD,
            &[0xa1, 0x63, b'o', b'f', b'f', 0x00][..],
        ), // no data
        (
            group::IMAGE,
            image::STATE,
            &[0xa1, 0x67, b'c', b'o', b'n', b'f', b'i', b'r', b'm', 0x01][..],
        ),
        (group::OS, os::ECHO, &[0xa1, 0x61, b'd', 0x01][..]),
        (group::BRICKLESS, brickless::RESUME, &[0xa0][..]),
    ] {
        let b = rig.request(Op::Write, grp, cmd, body);
        assert_eq!(
            field(&b, "rc").as_deref(),
            Some("3"),
            "group {grp} cmd {cmd}: {b:?}"
        );
    }
    // An unknown command: ENOTSUP.
    let b = rig.request(Op::Read, 9, 0, &[0xa0]);
    assert_eq!(field(&b, "rc").as_deref(), Some("8"));
    // An upload whose first chunk is not an MCUboot header: refused before any erase.
    let b = rig.upload(0, &[0x55; 512], Some((4096, &[0; 32])));
    assert!(field(&b, "err").is_some(), "{b:?}");
    assert_eq!(
        rig.flash.op_count(),
        ops,
        "no flash operation for any of it"
    );
}

#[test]
fn offsets_out_of_order_and_repeats_write_nothing_wrong() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    let img = rig.image(2, 40_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    let len = img.len() as u32;
    let chunk = 1024usize;
    assert_eq!(
        field(&rig.upload(0, &img[..chunk], Some((len, &sha))), "off").as_deref(),
        Some("1024")
    );
    // A chunk from the future, a repeat of the past, a misaligned start: all answered with
    // the offset expected, none written.
    let ops = rig.flash.op_count();
    for off in [4096usize, 1000, 1030] {
        let b = rig.upload(off as u32, &img[off..off + chunk], None);
        assert_eq!(field(&b, "off").as_deref(), Some("1024"), "off {off}");
    }
    // Offset 0 without the length a start needs: an error.
    assert!(field(&rig.upload(0, &img[..chunk], None), "err").is_some());
    assert_eq!(rig.flash.op_count(), ops, "none of them wrote");
    // The same start again (same sha): the upload carries on, nothing rewritten.
    let b = rig.upload(0, &img[..chunk], Some((len, &sha)));
    assert_eq!(field(&b, "off").as_deref(), Some("1024"));
    // A chunk whose length is not whole write units: only whole units are taken.
    let b = rig.upload(1024, &img[1024..1024 + 100], None);
    assert_eq!(
        field(&b, "off").as_deref(),
        Some("1120"),
        "100 bytes -> 96 (8-byte units)"
    );
    let mut off = 1120;
    while off < img.len() {
        let end = (off + chunk).min(img.len());
        let b = rig.upload(off as u32, &img[off..end], None);
        off = field(&b, "off").unwrap().parse().unwrap();
    }
    let b = rig.upload(0, &img[..chunk], Some((len, &sha)));
    assert_eq!(
        field(&b, "match").as_deref(),
        Some("true"),
        "a repeat of the start after the end says complete"
    );
    let staged = rig
        .updater()
        .check_staged()
        .expect("the staged image verifies");
    assert_eq!(staged.version.major, 2);
}

#[test]
fn a_damaged_chunk_never_becomes_an_accepted_image() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    let img = rig.image(2, 20_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    let mut damaged = img.clone();
    damaged[9_000] ^= 0x10;
    let mut off = 0usize;
    while off < damaged.len() {
        let end = (off + 2048).min(damaged.len());
        let first = (off == 0).then_some((damaged.len() as u32, &sha));
        let b = rig.upload(off as u32, &damaged[off..end], first);
        off = field(&b, "off").unwrap().parse().unwrap();
        if off == damaged.len() {
            assert_eq!(
                field(&b, "match").as_deref(),
                Some("false"),
                "the device's sha differs"
            );
        }
    }
    assert!(rig.updater().check_staged().is_none(), "it does not verify");
    // Marking it by the intact image's hash fails, and changes nothing.
    let hash = brickless_image::inspect::inspect(&img, 0xff)
        .unwrap()
        .computed_hash;
    let mut body = Vec::new();
    Encoder::new(&mut body)
        .map(2)
        .unwrap()
        .str("hash")
        .unwrap()
        .bytes(&hash)
        .unwrap()
        .str("confirm")
        .unwrap()
        .bool(false)
        .unwrap();
    let b = rig.request(Op::Write, group::IMAGE, image::STATE, &body);
    assert!(field(&b, "err").is_some(), "{b:?}");
    assert_eq!(rig.updater().state().phase, Phase::Idle);
}

fn digests(img: &[u8]) -> Vec<u8> {
    img.chunks(brickless::BLOCK as usize)
        .flat_map(|b| Sha256::digest(b)[..brickless::DIGEST].to_vec())
        .collect()
}

fn resume(rig: &mut Rig, img: &[u8]) -> Vec<u8> {
    let sha: [u8; 32] = Sha256::digest(img).into();
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(3).unwrap();
    e.str("len").unwrap().u32(img.len() as u32).unwrap();
    e.str("sha").unwrap().bytes(&sha).unwrap();
    e.str("digests").unwrap().bytes(&digests(img)).unwrap();
    rig.request(Op::Write, group::BRICKLESS, brickless::RESUME, &body)
}

#[test]
fn an_upload_cut_by_power_resumes_from_the_flash_at_a_sector_edge() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    let img = rig.image(2, 60_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    let len = img.len() as u32;
    let mut off = 0usize;
    while off < 30_000 {
        let first = (off == 0).then_some((len, &sha));
        let b = rig.upload(off as u32, &img[off..off + 2048], first);
        off = field(&b, "off").unwrap().parse().unwrap();
    }
    // Power is lost inside the next write: a torn unit; RAM (the session) is gone.
    rig.flash.arm_cut(brickless_flash_model::CutPoint::new(
        rig.flash.op_count(),
        brickless_flash_model::CutPhase::Torn,
    ));
    rig.upload(off as u32, &img[off..off + 2048], None);
    rig.flash.power_cycle();
    rig.server = Server::new(*rig.server.config());
    let b = resume(&mut rig, &img);
    let from: usize = field(&b, "off").unwrap().parse().unwrap();
    // L4 pages are 2 KiB: the resume point is the page holding the first unknown byte.
    assert_eq!(from % 2048, 0);
    assert!(
        from >= 28_000 && from <= off,
        "resumed from {from}, data up to {off}"
    );
    let mut off = from;
    while off < img.len() {
        let end = (off + 2048).min(img.len());
        let b = rig.upload(off as u32, &img[off..end], None);
        off = field(&b, "off").unwrap().parse().unwrap();
        if off == img.len() {
            assert_eq!(field(&b, "match").as_deref(), Some("true"));
        }
    }
    assert!(
        rig.updater().check_staged().is_some(),
        "the resumed upload verifies"
    );
    // Resuming a finished upload says so at once.
    let b = resume(&mut rig, &img);
    assert_eq!(field(&b, "off").unwrap(), img.len().to_string());
    assert_eq!(field(&b, "match").as_deref(), Some("true"));
    // Another image's digests match nothing: it starts at 0.
    let other = rig.image(3, 60_000);
    rig.server = Server::new(*rig.server.config());
    assert_eq!(
        field(&resume(&mut rig, &other), "off").as_deref(),
        Some("0")
    );
}

#[test]
fn parameters_bootloader_and_slot_info_say_what_the_device_is() {
    let mut rig = Rig::new("stm32h753zi", Mode::Application);
    let b = rig.request(Op::Read, group::OS, os::MCUMGR_PARAMS, &[0xa0]);
    assert_eq!(field(&b, "buf_size").as_deref(), Some("4096"));
    assert_eq!(field(&b, "buf_count").as_deref(), Some("4"));
    let b = rig.request(Op::Read, group::OS, os::BOOTLOADER_INFO, &[0xa0]);
    assert!(b.windows(9).any(|w| w == b"brickless"), "{b:?}");
    let mut q = Vec::new();
    Encoder::new(&mut q)
        .map(1)
        .unwrap()
        .str("query")
        .unwrap()
        .str("mode")
        .unwrap();
    let b = rig.request(Op::Read, group::OS, os::BOOTLOADER_INFO, &q);
    assert_eq!(field(&b, "mode").as_deref(), Some("3"), "a revertible swap");
    let b = rig.request(Op::Read, group::IMAGE, image::SLOT_INFO, &[0xa0]);
    let staging = rig.layout.staging().size;
    let max = staging.min(rig.layout.max_image_size());
    let mut want = Vec::new();
    Encoder::new(&mut want)
        .str("max_image_size")
        .unwrap()
        .u32(max)
        .unwrap();
    assert!(
        b.windows(want.len()).any(|w| w == want),
        "slot info names the largest image: {b:?}"
    );
    let b = rig.request(
        Op::Write,
        group::OS,
        os::ECHO,
        &[0xa1, 0x61, b'd', 0x62, b'h', b'i'],
    );
    assert_eq!(b, [0xa1, 0x61, b'r', 0x62, b'h', b'i']);
}

#[test]
fn an_upload_flagged_upgrade_is_refused_when_not_newer_than_the_running_image() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    // Install v2 as the running image through the engine.
    let v2 = rig.image(2, 8_000);
    let start = rig.layout.offset(rig.layout.spec().primary.start);
    embedded_storage::nor_flash::NorFlash::erase(&mut rig.flash, start, start + 8192).unwrap();
    embedded_storage::nor_flash::NorFlash::write(&mut rig.flash, start, &v2[..v2.len() / 8 * 8])
        .unwrap();
    let mut tail = [0xffu8; 8];
    tail[..v2.len() % 8].copy_from_slice(&v2[v2.len() / 8 * 8..]);
    embedded_storage::nor_flash::NorFlash::write(
        &mut rig.flash,
        start + (v2.len() / 8 * 8) as u32,
        &tail,
    )
    .unwrap();
    assert_eq!(
        rig.updater().check_primary().map(|i| i.version.major),
        Some(2)
    );
    let ops = rig.flash.op_count();
    for (major, refused) in [(1u8, true), (2, true), (3, false)] {
        let img = rig.image(major, 8_000);
        let sha: [u8; 32] = Sha256::digest(&img).into();
        let mut body = Vec::new();
        let mut e = Encoder::new(&mut body);
        e.map(5).unwrap();
        e.str("len").unwrap().u32(img.len() as u32).unwrap();
        e.str("sha").unwrap().bytes(&sha).unwrap();
        e.str("upgrade").unwrap().bool(true).unwrap();
        e.str("off").unwrap().u32(0).unwrap();
        e.str("data").unwrap().bytes(&img[..1024]).unwrap();
        let b = rig.request(Op::Write, group::IMAGE, image::UPLOAD, &body);
        if refused {
            assert!(
                field(&b, "err").is_some(),
                "v{major} over a running v2: {b:?}"
            );
            assert_eq!(rig.flash.op_count(), ops, "nothing written for v{major}");
        } else {
            assert_eq!(
                field(&b, "off").as_deref(),
                Some("1024"),
                "v3 is newer: {b:?}"
            );
        }
    }
}

/// Uploads `img` whole in 2 KiB chunks.
fn upload_all(rig: &mut Rig, img: &[u8]) -> Vec<u8> {
    let sha: [u8; 32] = Sha256::digest(img).into();
    let mut off = 0usize;
    loop {
        let end = (off + 2048).min(img.len());
        let first = (off == 0).then_some((img.len() as u32, &sha));
        let b = rig.upload(off as u32, &img[off..end], first);
        off = field(&b, "off").unwrap().parse().unwrap();
        if off == img.len() {
            return b;
        }
    }
}

/// One image entry of a state answer: (slot, version, flags set).
fn states(body: &[u8]) -> Vec<(u64, String, Vec<String>)> {
    let mut d = minicbor::Decoder::new(body);
    let mut out = Vec::new();
    let n = d.map().unwrap().unwrap();
    for _ in 0..n {
        if d.str().unwrap() != "images" {
            d.skip().unwrap();
            continue;
        }
        for _ in 0..d.array().unwrap().unwrap() {
            let (mut slot, mut version, mut flags) = (0, String::new(), Vec::new());
            for _ in 0..d.map().unwrap().unwrap() {
                match d.str().unwrap() {
                    "slot" => slot = d.u64().unwrap(),
                    "version" => version = d.str().unwrap().to_string(),
                    "image" => {
                        d.u64().unwrap();
                    }
                    "hash" => {
                        assert_eq!(d.bytes().unwrap().len(), 32);
                    }
                    k => {
                        assert!(d.bool().unwrap(), "flags are sent only when true");
                        flags.push(k.to_string());
                    }
                }
            }
            out.push((slot, version, flags));
        }
    }
    out
}

fn state_write(rig: &mut Rig, hash: Option<&[u8]>, confirm: bool) -> Vec<u8> {
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(1 + u64::from(hash.is_some())).unwrap();
    if let Some(h) = hash {
        e.str("hash").unwrap().bytes(h).unwrap();
    }
    e.str("confirm").unwrap().bool(confirm).unwrap();
    rig.request(Op::Write, group::IMAGE, image::STATE, &body)
}

fn err_rc(body: &[u8]) -> Option<String> {
    let e = field(body, "err")?;
    // The nested map's bytes: {"group": 1, "rc": N}; the last byte(s) hold N.
    Some(e)
}

fn boot(rig: &mut Rig) -> brickless_boot::BootDecision {
    let keys = rig.kit.keys;
    let mut buf = [0u8; 1024];
    let d = brickless_boot::BootLoader::new(
        &mut rig.flash,
        rig.layout,
        McubootCheck { keys },
        &mut buf,
    )
    .unwrap()
    .boot()
    .unwrap();
    rig.server = Server::new(*rig.server.config());
    d
}

#[test]
fn state_read_and_write_follow_the_engine_through_a_trial() {
    let mut rig = Rig::new("stm32l475vg", Mode::Recovery);
    let v1 = rig.image(1, 6_000);
    // Recovery: the finished upload is requested for good.
    upload_all(&mut rig, &v1);
    let s = states(&rig.request(Op::Read, group::IMAGE, image::STATE, &[0xa0]));
    assert_eq!(
        s,
        vec![(
            1,
            "1.0.0".into(),
            vec!["bootable".into(), "pending".into(), "permanent".into()]
        )]
    );
    boot(&mut rig);
    rig.server = Server::new(ServerConfig {
        mode: Mode::Application,
        ..*rig.server.config()
    });
    let s = states(&rig.request(Op::Read, group::IMAGE, image::STATE, &[0xa0]));
    assert_eq!(
        s,
        vec![(
            0,
            "1.0.0".into(),
            vec!["bootable".into(), "confirmed".into(), "active".into()]
        )]
    );

    let v2 = rig.image(2, 6_000);
    let h1 = brickless_image::inspect::inspect(&v1, 0xff)
        .unwrap()
        .computed_hash;
    let h2 = brickless_image::inspect::inspect(&v2, 0xff)
        .unwrap()
        .computed_hash;
    upload_all(&mut rig, &v2);
    let s = states(&rig.request(Op::Read, group::IMAGE, image::STATE, &[0xa0]));
    assert_eq!(
        s[1],
        (1, "2.0.0".into(), vec!["bootable".into()]),
        "staged, not yet pending"
    );
    // The running image cannot be set for test; an unknown hash is not found; a test needs a hash.
    assert!(
        err_rc(&state_write(&mut rig, Some(&h1), false)).is_some_and(|e| e.ends_with("24, 33]"))
    );
    assert!(err_rc(&state_write(&mut rig, Some(&[7u8; 32]), false))
        .is_some_and(|e| e.ends_with("24, 8]") || e.ends_with(", 8]")));
    assert_eq!(
        field(&state_write(&mut rig, None, false), "rc").as_deref(),
        Some("3")
    );
    // Confirming the running image when nothing is on trial changes nothing.
    let ops = rig.flash.op_count();
    state_write(&mut rig, None, true);
    assert_eq!(rig.flash.op_count(), ops);
    // Test v2: pending, not permanent; asking again says it is already pending.
    let s = states(&state_write(&mut rig, Some(&h2), false));
    assert_eq!(
        s[1],
        (1, "2.0.0".into(), vec!["bootable".into(), "pending".into()])
    );
    assert!(err_rc(&state_write(&mut rig, Some(&h2), false)).is_some_and(|e| e.ends_with(", 28]")));
    // An upload over a pending update: refused, nothing written.
    let ops = rig.flash.op_count();
    let b = rig.upload(0, &v1[..1024], Some((v1.len() as u32, &[0; 32])));
    assert!(err_rc(&b).is_some_and(|e| e.ends_with(", 28]")), "{b:?}");
    assert_eq!(rig.flash.op_count(), ops);

    boot(&mut rig);
    let s = states(&rig.request(Op::Read, group::IMAGE, image::STATE, &[0xa0]));
    assert_eq!(
        s,
        vec![
            (0, "2.0.0".into(), vec!["bootable".into(), "active".into()]),
            (
                1,
                "1.0.0".into(),
                vec!["bootable".into(), "confirmed".into()]
            ),
        ],
        "a trial: v2 runs unconfirmed, v1 is the revert image"
    );
    // During the trial, upload and erase are refused (no free slot) and write nothing.
    let ops = rig.flash.op_count();
    let b = rig.upload(0, &v1[..1024], Some((v1.len() as u32, &[0; 32])));
    assert!(err_rc(&b).is_some_and(|e| e.ends_with(", 9]")), "{b:?}");
    let b = rig.request(Op::Write, group::IMAGE, image::ERASE, &[0xa0]);
    assert!(err_rc(&b).is_some_and(|e| e.ends_with(", 9]")), "{b:?}");
    assert_eq!(rig.flash.op_count(), ops);
    // Confirm by the running image's hash: kept.
    let s = states(&state_write(&mut rig, Some(&h2), true));
    assert_eq!(
        s[0],
        (
            0,
            "2.0.0".into(),
            vec!["bootable".into(), "confirmed".into(), "active".into()]
        )
    );
}

#[test]
fn commands_answer_only_their_own_operation_and_v1_clients_get_v1_codes() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    for (op, grp, cmd) in [
        (Op::Read, group::IMAGE, image::UPLOAD),
        (Op::Read, group::IMAGE, image::ERASE),
        (Op::Read, group::OS, os::RESET),
        (Op::Write, group::OS, os::MCUMGR_PARAMS),
        (Op::Write, group::OS, os::BOOTLOADER_INFO),
        (Op::Write, group::IMAGE, image::SLOT_INFO),
        (Op::Write, group::BRICKLESS, brickless::CAPS),
        (Op::Read, group::BRICKLESS, brickless::RESUME),
    ] {
        let b = rig.request(op, grp, cmd, &[0xa0]);
        assert_eq!(field(&b, "rc").as_deref(), Some("8"), "{op:?} {grp}/{cmd}");
    }
    // Echo takes a read as well as a write; caps answer the fast path's questions.
    let b = rig.request(
        Op::Read,
        group::OS,
        os::ECHO,
        &[0xa1, 0x61, b'd', 0x61, b'x'],
    );
    assert_eq!(b, [0xa1, 0x61, b'r', 0x61, b'x']);
    let b = rig.request(Op::Read, group::BRICKLESS, brickless::CAPS, &[0xa0]);
    assert_eq!(field(&b, "raw").as_deref(), Some("true"));
    assert_eq!(field(&b, "window").as_deref(), Some("4"));
    // A reset is answered and asks the caller to reset; nothing else does.
    let h = Header {
        op: Op::Write,
        version: Version::V2,
        flags: 0,
        len: 1,
        group: group::OS,
        seq: 9,
        command: os::RESET,
    };
    let mut p = h.to_bytes().to_vec();
    p.push(0xa0);
    let keys = rig.kit.keys;
    let mut u = Updater::new(&mut rig.flash, rig.layout, McubootCheck { keys });
    let mut out = [0u8; 512];
    assert!(rig.server.handle(&mut u, &p, &mut out).unwrap().reset);
    assert!(
        rig.server.handle(&mut u, &p, &mut [0u8; 16]).is_none(),
        "no room for an answer: none"
    );
    // An SMP v1 request gets v1 codes: a slot number past 1 is EINVAL, not a v2 map.
    let img = rig.image(2, 4_000);
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(4).unwrap();
    e.str("image").unwrap().u8(2).unwrap();
    e.str("len").unwrap().u32(img.len() as u32).unwrap();
    e.str("off").unwrap().u8(0).unwrap();
    e.str("data").unwrap().bytes(&img[..512]).unwrap();
    let h = Header {
        op: Op::Write,
        version: Version::V1,
        flags: 0,
        len: body.len() as u16,
        group: group::IMAGE,
        seq: 3,
        command: image::UPLOAD,
    };
    let mut p = h.to_bytes().to_vec();
    p.extend_from_slice(&body);
    let (rh, rb) = rig.packet(&p).unwrap();
    assert_eq!(rh.version, Version::V1);
    assert_eq!(field(&rb, "rc").as_deref(), Some("3"), "{rb:?}");
    // Image 1 names the staging slot too (smpmgr's `--slot 1`).
    let sha: [u8; 32] = Sha256::digest(&img).into();
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(5).unwrap();
    e.str("image").unwrap().u8(1).unwrap();
    e.str("len").unwrap().u32(img.len() as u32).unwrap();
    e.str("sha").unwrap().bytes(&sha).unwrap();
    e.str("off").unwrap().u8(0).unwrap();
    e.str("data").unwrap().bytes(&img[..512]).unwrap();
    let b = rig.request(Op::Write, group::IMAGE, image::UPLOAD, &body);
    assert_eq!(field(&b, "off").as_deref(), Some("512"));
    assert_eq!(rig.server.upload_progress(), Some((512, img.len() as u32)));
}

#[test]
fn the_bootloader_mode_says_whether_the_layout_reverts_and_whether_this_is_recovery() {
    let part = brickless_flash::part("stm32l475vg").unwrap();
    let mut q = Vec::new();
    Encoder::new(&mut q)
        .map(1)
        .unwrap()
        .str("query")
        .unwrap()
        .str("mode")
        .unwrap();
    for (strategy, mode, want_mode) in [
        (StrategyKind::Swap, Mode::Application, "3"),
        (StrategyKind::Overwrite, Mode::Recovery, "2"),
    ] {
        let mut rig = Rig::new("stm32l475vg", mode);
        rig.layout = default_layout(&part.geometry, strategy).unwrap();
        let b = rig.request(Op::Read, group::OS, os::BOOTLOADER_INFO, &q);
        assert_eq!(field(&b, "mode").as_deref(), Some(want_mode));
        assert_eq!(
            field(&b, "recovery").as_deref(),
            Some(if mode == Mode::Recovery {
                "true"
            } else {
                "false"
            })
        );
    }
}

/// Uploads `img` in chunks of `chunk` bytes; the last answer.
fn upload_in(rig: &mut Rig, img: &[u8], chunk: usize) -> Vec<u8> {
    let sha: [u8; 32] = Sha256::digest(img).into();
    let mut off = 0usize;
    loop {
        let end = (off + chunk).min(img.len());
        let first = (off == 0).then_some((img.len() as u32, &sha));
        let b = rig.upload(off as u32, &img[off..end], first);
        // An error answer ends the upload: the caller looks at it.
        let Some(next) = field(&b, "off") else {
            return b;
        };
        off = next.parse().unwrap();
        if off == img.len() {
            return b;
        }
    }
}

fn v1_request(rig: &mut Rig, grp: u16, cmd: u8, body: &[u8]) -> Vec<u8> {
    let h = Header {
        op: Op::Write,
        version: Version::V1,
        flags: 0,
        len: body.len() as u16,
        group: grp,
        seq: 77,
        command: cmd,
    };
    let mut p = h.to_bytes().to_vec();
    p.extend_from_slice(body);
    rig.packet(&p).unwrap().1
}

#[test]
fn chunks_ending_on_a_sector_edge_and_an_image_filling_the_slot_upload_whole() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    // 1 KiB chunks end exactly where the erased area ends (2 KiB pages) every other time.
    let img = rig.image(2, 9_000);
    assert_eq!(
        field(&upload_in(&mut rig, &img, 1024), "match").as_deref(),
        Some("true")
    );
    assert!(rig.updater().check_staged().is_some());
    // The largest image the slot takes is taken; one byte more is refused, nothing erased.
    let room = rig.layout.staging().size.min(rig.layout.max_image_size());
    let ops = rig.flash.op_count();
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(3).unwrap();
    e.str("len").unwrap().u32(room + 1).unwrap();
    e.str("off").unwrap().u8(0).unwrap();
    e.str("data").unwrap().bytes(&img[..512]).unwrap();
    let b = rig.request(Op::Write, group::IMAGE, image::UPLOAD, &body);
    assert!(err_rc(&b).is_some_and(|e| e.ends_with("24, 30]")), "{b:?}");
    assert_eq!(rig.flash.op_count(), ops);
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(3).unwrap();
    e.str("len").unwrap().u32(room).unwrap();
    e.str("off").unwrap().u8(0).unwrap();
    e.str("data").unwrap().bytes(&img[..512]).unwrap();
    let b = rig.request(Op::Write, group::IMAGE, image::UPLOAD, &body);
    assert_eq!(field(&b, "off").as_deref(), Some("512"), "{b:?}");
}

#[test]
fn a_new_upload_of_the_same_length_starts_over_and_resume_checks_its_arguments() {
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    let a = rig.image(2, 12_000);
    let b_img = rig.image(3, 12_000);
    assert_eq!(a.len(), b_img.len());
    let sha_a: [u8; 32] = Sha256::digest(&a).into();
    rig.upload(0, &a[..4096], Some((a.len() as u32, &sha_a)));
    // Same length, another sha: a new upload, from 0.
    let sha_b: [u8; 32] = Sha256::digest(&b_img).into();
    let r = rig.upload(0, &b_img[..2048], Some((b_img.len() as u32, &sha_b)));
    assert_eq!(field(&r, "off").as_deref(), Some("2048"));
    // No sha: never a resume either.
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(3).unwrap();
    e.str("len").unwrap().u32(b_img.len() as u32).unwrap();
    e.str("off").unwrap().u8(0).unwrap();
    e.str("data").unwrap().bytes(&b_img[..1024]).unwrap();
    let r = rig.request(Op::Write, group::IMAGE, image::UPLOAD, &body);
    assert_eq!(field(&r, "off").as_deref(), Some("1024"));
    // Restarted with the sha, it is a new upload again, and completes.
    let r = upload_in(&mut rig, &b_img, 1024);
    assert_eq!(field(&r, "match").as_deref(), Some("true"));
    // Resume with a length of 0 or past the slot: refused.
    for len in [0u32, rig.layout.staging().size + 1] {
        let mut body = Vec::new();
        let mut e = Encoder::new(&mut body);
        let blocks = len.div_ceil(brickless::BLOCK) as usize;
        e.map(3).unwrap();
        e.str("len").unwrap().u32(len).unwrap();
        e.str("sha").unwrap().bytes(&[0; 32]).unwrap();
        e.str("digests")
            .unwrap()
            .bytes(&vec![0; blocks * brickless::DIGEST])
            .unwrap();
        let r = rig.request(Op::Write, group::BRICKLESS, brickless::RESUME, &body);
        assert!(
            err_rc(&r).is_some_and(|e| e.ends_with("24, 30]")),
            "len {len}: {r:?}"
        );
    }
    // A finished upload, after a restart (no RAM session): the flash says it is all there.
    let img = rig.image(4, 10_000);
    upload_in(&mut rig, &img, 2048);
    rig.server = Server::new(*rig.server.config());
    let r = resume(&mut rig, &img);
    assert_eq!(field(&r, "off").unwrap(), img.len().to_string());
    assert_eq!(field(&r, "match").as_deref(), Some("true"));
    // And while the session lives, resume says where it stands.
    let img5 = rig.image(5, 10_000);
    let sha5: [u8; 32] = Sha256::digest(&img5).into();
    rig.upload(0, &img5[..1000], Some((img5.len() as u32, &sha5)));
    assert_eq!(
        field(&resume(&mut rig, &img5), "off").as_deref(),
        Some("1000")
    );
}

#[test]
fn engine_refusals_and_flash_failures_get_the_codes_clients_know() {
    // v1 clients get v1 codes for image errors.
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    let b = v1_request(&mut rig, group::IMAGE, image::UPLOAD, &{
        let mut body = Vec::new();
        let mut e = Encoder::new(&mut body);
        e.map(3).unwrap();
        e.str("len").unwrap().u32(4096).unwrap();
        e.str("off").unwrap().u8(0).unwrap();
        e.str("data").unwrap().bytes(&[0x55; 64]).unwrap();
        body
    });
    assert_eq!(
        field(&b, "rc").as_deref(),
        Some("3"),
        "not an image header: EINVAL"
    );
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(2)
        .unwrap()
        .str("hash")
        .unwrap()
        .bytes(&[7; 32])
        .unwrap()
        .str("confirm")
        .unwrap()
        .bool(false)
        .unwrap();
    let b = v1_request(&mut rig, group::IMAGE, image::STATE, &body);
    assert_eq!(
        field(&b, "rc").as_deref(),
        Some("5"),
        "unknown hash: ENOENT"
    );

    // An update older than the running image: refused as a downgrade (27).
    let v3 = rig.image(3, 6_000);
    upload_in(&mut rig, &v3, 2048);
    let h3 = brickless_image::inspect::inspect(&v3, 0xff)
        .unwrap()
        .computed_hash;
    state_write(&mut rig, Some(&h3), true);
    boot(&mut rig);
    let v2 = rig.image(2, 6_000);
    upload_in(&mut rig, &v2, 2048);
    let h2 = brickless_image::inspect::inspect(&v2, 0xff)
        .unwrap()
        .computed_hash;
    let b = state_write(&mut rig, Some(&h2), false);
    assert!(err_rc(&b).is_some_and(|e| e.ends_with("24, 27]")), "{b:?}");
    // While an update is pending, an unknown hash is still not found (not "pending").
    let v4 = rig.image(4, 6_000);
    upload_in(&mut rig, &v4, 2048);
    let h4 = brickless_image::inspect::inspect(&v4, 0xff)
        .unwrap()
        .computed_hash;
    state_write(&mut rig, Some(&h4), false);
    let b = state_write(&mut rig, Some(&[9; 32]), false);
    assert!(err_rc(&b).is_some_and(|e| e.ends_with(", 8]")), "{b:?}");
    // v1: an upload over the pending update is EBADSTATE.
    let b = v1_request(&mut rig, group::IMAGE, image::ERASE, &[0xa0]);
    assert_eq!(field(&b, "rc").as_deref(), Some("6"), "{b:?}");

    // A power loss inside a write: the answer names the flash failure.
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    let img = rig.image(2, 8_000);
    let sha: [u8; 32] = Sha256::digest(&img).into();
    rig.upload(0, &img[..2048], Some((img.len() as u32, &sha)));
    rig.flash.arm_cut(brickless_flash_model::CutPoint::new(
        rig.flash.op_count(),
        brickless_flash_model::CutPhase::Before,
    ));
    let b = rig.upload(2048, &img[2048..4096], None);
    assert!(
        err_rc(&b).is_some_and(|e| e.ends_with(", 12]") || e.ends_with(", 13]")),
        "{b:?}"
    );

    // Recovery takes only an image that verifies: a damaged one is refused as corrupt.
    let mut rig = Rig::new("stm32l475vg", Mode::Recovery);
    let mut bad = rig.image(1, 6_000);
    bad[3000] ^= 1;
    let b = upload_in(&mut rig, &bad, 2048);
    assert_eq!(field(&b, "rc").as_deref(), Some("9"), "{b:?}");
    assert_eq!(rig.updater().state().phase, Phase::Idle);

    // A layout that cannot revert refuses a test, and says so (not supported).
    let part = brickless_flash::part("stm32l475vg").unwrap();
    let mut rig = Rig::new("stm32l475vg", Mode::Application);
    rig.layout = default_layout(&part.geometry, StrategyKind::Overwrite).unwrap();
    let img = rig.image(2, 6_000);
    upload_in(&mut rig, &img, 2048);
    let h = brickless_image::inspect::inspect(&img, 0xff)
        .unwrap()
        .computed_hash;
    let b = state_write(&mut rig, Some(&h), false);
    assert_eq!(field(&b, "rc").as_deref(), Some("8"), "{b:?}");
}

/// A board whose protection the tests control, counting the protect calls.
struct FakeBoard {
    status: Option<ProtectionStatus>,
    result: Result<bool, ProtectFailure>,
    protect_calls: u32,
}

impl Board for FakeBoard {
    fn protection(&mut self) -> Option<ProtectionStatus> {
        self.status
    }
    fn protect_bootloader(&mut self) -> Result<bool, ProtectFailure> {
        self.protect_calls += 1;
        if self.result.is_ok() {
            if let Some(s) = &mut self.status {
                s.bootloader = WriteProtection::Full;
            }
        }
        self.result
    }
}

/// One protect-group request to a server with `board`: the outcome and the answer's body.
fn protect_request(
    rig: &mut Rig,
    board: &mut FakeBoard,
    op: Op,
    body: &[u8],
) -> (Outcome, Vec<u8>) {
    let h = Header {
        op,
        version: Version::V2,
        flags: 0,
        len: body.len() as u16,
        group: group::BRICKLESS,
        seq: 7,
        command: brickless::PROTECT,
    };
    let mut p = h.to_bytes().to_vec();
    p.extend_from_slice(body);
    let (o, _, b) = rig.packet_with(board, &p).expect("an answer");
    (o, b)
}

#[test]
fn protection_is_reported_and_set_only_on_an_explicit_request() {
    let mut rig = Rig::new("stm32l475vg", Mode::Recovery);
    let ops = rig.flash.op_count();
    let mut board = FakeBoard {
        status: Some(ProtectionStatus {
            readout_level: 0,
            bootloader: WriteProtection::None,
        }),
        result: Ok(true),
        protect_calls: 0,
    };
    let (o, b) = protect_request(&mut rig, &mut board, Op::Read, &[0xa0]);
    assert_eq!(field(&b, "rdp").as_deref(), Some("0"), "{b:?}");
    assert_eq!(field(&b, "wrp").as_deref(), Some("none"), "{b:?}");
    assert!(!o.reset);
    // {"wrp": false}, {} and a malformed body change nothing.
    for body in [
        &[0xa1, 0x63, b'w', b'r', b'p', 0xf4][..],
        &[0xa0],
        &[0xa1, 0x63],
    ] {
        let (o, b) = protect_request(&mut rig, &mut board, Op::Write, body);
        assert_eq!(field(&b, "rc").as_deref(), Some("3"), "{body:?}: {b:?}");
        assert!(!o.reset);
    }
    assert_eq!(
        board.protect_calls, 0,
        "no protection without {{\"wrp\": true}}"
    );
    // {"wrp": true}: set, reported as the registers now say, reset asked for.
    let (o, b) = protect_request(
        &mut rig,
        &mut board,
        Op::Write,
        &[0xa1, 0x63, b'w', b'r', b'p', 0xf5],
    );
    assert_eq!(board.protect_calls, 1);
    assert_eq!(field(&b, "wrp").as_deref(), Some("full"), "{b:?}");
    assert_eq!(field(&b, "reset").as_deref(), Some("true"), "{b:?}");
    assert!(
        o.reset,
        "the device resets after answering when the change needs it"
    );
    assert_eq!(
        rig.flash.op_count(),
        ops,
        "the engine's flash is not touched"
    );
}

#[test]
fn protection_failures_and_boards_without_it_answer_errors() {
    let mut rig = Rig::new("stm32h753zi", Mode::Recovery);
    let set = [0xa1, 0x63, b'w', b'r', b'p', 0xf5];
    let status = Some(ProtectionStatus {
        readout_level: 1,
        bootloader: WriteProtection::Partial,
    });
    for (board_status, result, rc) in [
        (None, Ok(false), "8"),
        (status, Err(ProtectFailure::Unsupported), "8"),
        (status, Err(ProtectFailure::Failed), "1"),
    ] {
        let mut board = FakeBoard {
            status: board_status,
            result,
            protect_calls: 0,
        };
        let (o, b) = protect_request(&mut rig, &mut board, Op::Write, &set);
        assert_eq!(field(&b, "rc").as_deref(), Some(rc), "{result:?}: {b:?}");
        assert!(!o.reset);
    }
    // The plain handler has no board: ENOTSUP for read and write.
    let b = rig.request(Op::Read, group::BRICKLESS, brickless::PROTECT, &[0xa0]);
    assert_eq!(field(&b, "rc").as_deref(), Some("8"), "{b:?}");
}
