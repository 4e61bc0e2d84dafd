//! The server over the real engine on the flash model, request by request: malformed input
//! changes nothing, offsets out of order and repeats write nothing wrong, a damaged chunk
//! never becomes an accepted image, and an upload cut by power resumes from the flash.
use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{default_layout, Phase, StrategyKind, Updater};
use brickless_campaign::kit::McubootKit;
use brickless_flash_model::SimFlash;
use brickless_image::ImageVersion;
use brickless_smp::header::{brickless, group, image, os};
use brickless_smp::{Header, Mode, Op, Server, ServerConfig, Version, HEADER_LEN};
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
        let keys = self.kit.keys;
        let mut u = Updater::new(&mut self.flash, self.layout, McubootCheck { keys });
        let mut out = vec![0u8; 8192];
        let o = self.server.handle(&mut u, packet, &mut out)?;
        let h = Header::parse(&out[..o.len]).unwrap();
        assert_eq!(
            usize::from(h.len),
            o.len - HEADER_LEN,
            "the length field is the body's"
        );
        Some((h, out[HEADER_LEN..o.len].to_vec()))
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
