//! MCUboot-built applications on brickless: requests and confirmations written into the slot
//! trailers byte for byte as MCUboot's `boot_set_pending` and `boot_set_confirmed` write them
//! (re-implemented below from the documented field placement, independently of the engine's
//! `trailer.rs`), at write units 8 (L475), 16 (H7A3, U585) and 32 (H753), plus 4 (F407, and
//! L073 whose flash erases to 0x00). Each test names the swap-type table row it checks:
//! 2 (secondary magic good, image_ok unset: TEST), 3 (image_ok set: PERM), 4 (primary magic
//! good, image_ok unset, copy_done set: REVERT), 5 (anything else: NONE).
use brickless_boot::state::StateStore;
use brickless_boot::trailer::Trailer;
use brickless_boot::{
    BootDecision, BootEvent, BootState, BootTarget, ImageVersion, Phase, StrategyKind, Updater,
    UpgradeMode,
};
use brickless_campaign::kit::McubootKit;
use brickless_campaign::{
    boot_device, reduced_layout, reduced_part, strategies_for, Flow, Kit, Scenario, NEW_VERSION,
    OLD_VERSION,
};
use brickless_flash::part;
use brickless_flash_model::{CutPhase, CutPoint, SimFlash};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

/// The parts of the table tests: write units 8, 16, 16, 32, then 4 (no ECC) and 4 (erased 0x00).
const PARTS: [&str; 6] = [
    "stm32l475vg",
    "stm32h7a3zi",
    "stm32u585ai",
    "stm32h753zi",
    "stm32f407vg",
    "stm32l073rz",
];

/// MCUboot's application-side trailer calls over one slot, as MCUboot and Zephyr implement
/// them, written from the documented layout (not from `brickless_boot::trailer`).
mod mcuboot {
    use embedded_storage::nor_flash::NorFlash;

    const MAGIC_8: [u8; 16] = [
        0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79,
        0x80,
    ];
    const MAGIC_TAIL: [u8; 14] = [
        0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a,
    ];

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum State {
        Good,
        Unset,
        Bad,
    }

    /// `BOOT_EBADIMAGE`: the secondary magic is neither unset nor good.
    #[derive(Debug, PartialEq, Eq)]
    pub struct BadImage;

    /// A flash area: NorFlash offset of its start, size, write size, erased value.
    #[derive(Clone, Copy, Debug)]
    pub struct Area {
        pub off: u32,
        pub size: u32,
        pub write_size: u32,
        pub erased: u8,
    }

    impl Area {
        /// BOOT_MAX_ALIGN as a Zephyr build sets it: the write block size, at least 8.
        pub fn max_align(&self) -> u32 {
            self.write_size.max(8)
        }
        pub fn magic(&self) -> [u8; 16] {
            let a = self.max_align();
            if a == 8 {
                return MAGIC_8;
            }
            let mut m = [0u8; 16];
            m[0] = a as u8;
            m[1] = (a >> 8) as u8;
            m[2..].copy_from_slice(&MAGIC_TAIL);
            m
        }
        pub fn magic_off(&self) -> u32 {
            self.size - 16
        }
        pub fn image_ok_off(&self) -> u32 {
            let a = self.max_align();
            (self.size - 16 - a) / a * a
        }
        pub fn copy_done_off(&self) -> u32 {
            self.image_ok_off() - self.max_align()
        }
        pub fn swap_info_off(&self) -> u32 {
            self.copy_done_off() - self.max_align()
        }

        fn read<F: NorFlash>(&self, flash: &mut F, off: u32, buf: &mut [u8]) -> bool {
            flash.read(self.off + off, buf).is_ok()
        }

        pub fn magic_state<F: NorFlash>(&self, flash: &mut F) -> State {
            let mut m = [0u8; 16];
            if !self.read(flash, self.magic_off(), &mut m) {
                return State::Bad;
            }
            if m.iter().all(|&b| b == self.erased) {
                State::Unset
            } else if m == self.magic() {
                State::Good
            } else {
                State::Bad
            }
        }

        /// `boot_read_flag`: one byte; erased is unset, 0x01 set, else bad.
        pub fn flag<F: NorFlash>(&self, flash: &mut F, off: u32) -> State {
            let mut b = [0u8; 1];
            if !self.read(flash, off, &mut b) {
                return State::Bad;
            }
            match b[0] {
                x if x == self.erased => State::Unset,
                1 => State::Good,
                _ => State::Bad,
            }
        }

        pub fn swap_info<F: NorFlash>(&self, flash: &mut F) -> Option<u8> {
            let mut b = [0u8; 1];
            self.read(flash, self.swap_info_off(), &mut b)
                .then_some(b[0])
        }

        /// `boot_write_trailer`: the bytes padded with the erased value to the write size.
        fn write_trailer<F: NorFlash>(
            &self,
            flash: &mut F,
            off: u32,
            data: &[u8],
        ) -> Result<(), F::Error> {
            let len = data.len().div_ceil(self.write_size as usize) * self.write_size as usize;
            assert!(len as u32 <= self.max_align(), "MCUboot asserts here");
            let mut buf = vec![self.erased; len];
            buf[..data.len()].copy_from_slice(data);
            flash.write(self.off + off, &buf)
        }

        /// `boot_write_magic`: the magic at the end of a chunk of align_up(16, BOOT_MAX_ALIGN)
        /// bytes, the erased value first.
        fn write_magic<F: NorFlash>(&self, flash: &mut F) -> Result<(), F::Error> {
            let a = self.max_align();
            let pad_off = self.magic_off() / a * a;
            let len = 16usize.div_ceil(a as usize) * a as usize;
            let mut buf = vec![self.erased; len];
            buf[len - 16..].copy_from_slice(&self.magic());
            flash.write(self.off + pad_off, &buf)
        }

        /// `boot_set_pending(permanent)` on the secondary slot (image 0).
        pub fn boot_set_pending<F: NorFlash>(
            &self,
            flash: &mut F,
            permanent: bool,
        ) -> Result<Result<(), BadImage>, F::Error> {
            match self.magic_state(flash) {
                State::Good => return Ok(Ok(())), // already scheduled
                State::Bad => return Ok(Err(BadImage)),
                State::Unset => {}
            }
            self.write_magic(flash)?;
            if permanent {
                self.write_trailer(flash, self.image_ok_off(), &[1])?;
            }
            let swap_type = if permanent { 3 } else { 2 };
            self.write_trailer(flash, self.swap_info_off(), &[swap_type])?;
            Ok(Ok(()))
        }

        /// `boot_set_confirmed()` on the primary slot: image_ok only if the magic is good and
        /// image_ok unset (copy_done not checked).
        pub fn boot_set_confirmed<F: NorFlash>(&self, flash: &mut F) -> Result<(), F::Error> {
            if self.magic_state(flash) == State::Good
                && self.flag(flash, self.image_ok_off()) == State::Unset
            {
                self.write_trailer(flash, self.image_ok_off(), &[1])?;
            }
            Ok(())
        }

        /// Zephyr's `boot_is_img_confirmed()`: an unset magic counts as confirmed.
        pub fn boot_is_img_confirmed<F: NorFlash>(&self, flash: &mut F) -> bool {
            match self.magic_state(flash) {
                State::Unset => true,
                _ => self.flag(flash, self.image_ok_off()) == State::Good,
            }
        }
    }

    /// MCUboot's swap types.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Swap {
        None,
        Test,
        Perm,
        Revert,
    }

    /// `boot_swap_type`: rows 2 to 5 of the table, in order.
    pub fn swap_type<F: NorFlash>(flash: &mut F, primary: &Area, secondary: &Area) -> Swap {
        let sm = secondary.magic_state(flash);
        let sok = secondary.flag(flash, secondary.image_ok_off());
        if sm == State::Good && sok == State::Unset {
            return Swap::Test;
        }
        if sm == State::Good && sok == State::Good {
            return Swap::Perm;
        }
        if primary.magic_state(flash) == State::Good
            && primary.flag(flash, primary.image_ok_off()) == State::Unset
            && primary.flag(flash, primary.copy_done_off()) == State::Good
        {
            return Swap::Revert;
        }
        Swap::None
    }
}

use mcuboot::{Area, State, Swap};

/// Whether the secondary trailer asks for an update (table rows 2 or 3). A good magic with a
/// garbled image_ok (an erase of the trailer cut short) asks for nothing.
fn asks(secondary: &Area, flash: &mut SimFlash) -> bool {
    secondary.magic_state(flash) == State::Good
        && secondary.flag(flash, secondary.image_ok_off()) != State::Bad
}

/// A way to prepare a device's flash before it boots.
type Setup<'a> = &'a dyn Fn(&mut SimFlash);

fn scenario(name: &str, strategy: StrategyKind, flow: Flow) -> Scenario {
    Scenario::new(part(name).unwrap(), strategy, flow).unwrap()
}

/// The MCUboot slots an application built for this layout sees: the primary slot, and the
/// staging area as the secondary slot.
fn areas(scn: &Scenario) -> (Area, Area) {
    let l = &scn.layout;
    let area = |r: brickless_boot::Region| Area {
        off: l.offset(r.start),
        size: r.size,
        write_size: l.write_unit(),
        erased: l.erased(),
    };
    (area(l.spec().primary), area(l.staging()))
}

/// One reset: the bootloader's decision (through the chip resets a bank flip asks for).
fn boot(scn: &Scenario, flash: &mut SimFlash) -> BootDecision {
    let mut buf = vec![0u8; scn.buffer];
    boot_device(flash, scn.layout, scn.check, scn.policy, &mut buf).unwrap()
}

fn booted(scn: &Scenario, flash: &mut SimFlash) -> BootTarget {
    match boot(scn, flash) {
        BootDecision::Boot(t) => t,
        other => panic!("{}: expected a boot, got {other:?}", scn.part.name),
    }
}

fn runs(flash: &SimFlash, t: &BootTarget, image: &[u8]) -> bool {
    let mut got = vec![0u8; t.image.size as usize];
    flash.read_abs(t.address, &mut got).is_ok() && got == image
}

fn state(scn: &Scenario, flash: &mut SimFlash) -> BootState {
    StateStore::load(flash, &scn.layout).state
}

/// Boots once more and requires that nothing was written: the device has settled.
fn settled(scn: &Scenario, flash: &mut SimFlash, image: &[u8]) {
    let ops = flash.op_count();
    let t = booted(scn, flash);
    let name = scn.part.name;
    assert!(runs(flash, &t, image), "{name}: settled on the wrong image");
    assert_eq!((t.trial, t.event), (false, BootEvent::None), "{name}");
    assert_eq!(flash.op_count(), ops, "{name}: a settled boot wrote flash");
}

fn packed(v: ImageVersion) -> u64 {
    v.packed()
}

/// Row 2 (TEST): `boot_set_pending(0)` gives the update one trial boot, during which
/// `boot_is_img_confirmed()` is false and the table reads row 4 (REVERT); not confirmed,
/// the next reset reverts, and the old image reads as confirmed.
#[test]
fn row2_test_request_boots_a_trial_then_reverts_unless_confirmed() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        let mut flash = scn.initial_flash();
        let (primary, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            mcuboot::swap_type(&mut flash, &primary, &secondary),
            Swap::Test
        );
        let floor = state(&scn, &mut flash).floor_version;

        let t = booted(&scn, &mut flash);
        assert!(
            runs(&flash, &t, &scn.new),
            "{name}: the trial runs the update"
        );
        assert_eq!(
            (t.trial, t.event),
            (true, BootEvent::TrialStarted),
            "{name}"
        );
        assert!(!primary.boot_is_img_confirmed(&mut flash), "{name}");
        // The request was taken: the secondary no longer asks; row 4 now.
        assert_ne!(secondary.magic_state(&mut flash), State::Good, "{name}");
        assert_eq!(
            mcuboot::swap_type(&mut flash, &primary, &secondary),
            Swap::Revert,
            "{name}"
        );

        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.old), "{name}: reverted");
        assert_eq!((t.trial, t.event), (false, BootEvent::Reverted), "{name}");
        assert!(primary.boot_is_img_confirmed(&mut flash), "{name}");
        assert_eq!(
            mcuboot::swap_type(&mut flash, &primary, &secondary),
            Swap::None
        );
        assert_eq!(state(&scn, &mut flash).floor_version, floor, "{name}");
        settled(&scn, &mut flash, &scn.old);
    }
}

/// Row 2 (TEST), then `boot_set_confirmed()` in the trial: the update is kept, the floor
/// raised, and the table reads row 5 (NONE).
#[test]
fn row2_test_request_confirmed_by_boot_set_confirmed_is_kept() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        let (primary, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, false)
            .unwrap()
            .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(t.trial && runs(&flash, &t, &scn.new), "{name}");

        primary.boot_set_confirmed(&mut flash).unwrap();
        assert!(primary.boot_is_img_confirmed(&mut flash), "{name}");
        assert_eq!(
            mcuboot::swap_type(&mut flash, &primary, &secondary),
            Swap::None
        );
        assert_eq!(state(&scn, &mut flash).phase, Phase::Trial, "{name}");

        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}: kept");
        assert!(!t.trial, "{name}");
        let s = state(&scn, &mut flash);
        assert_eq!(s.phase, Phase::Idle, "{name}");
        assert_eq!(s.floor_version, packed(NEW_VERSION), "{name}: floor raised");
        assert!(primary.boot_is_img_confirmed(&mut flash), "{name}");
        settled(&scn, &mut flash, &scn.new);
    }
}

/// Row 3 (PERM): `boot_set_pending(1)` installs the update for good, no trial; the primary
/// trailer reads as MCUboot leaves it after a permanent swap (image_ok set).
#[test]
fn row3_permanent_request_installs_without_a_trial() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::Permanent);
        let mut flash = scn.initial_flash();
        let (primary, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, true)
            .unwrap()
            .unwrap();
        assert_eq!(
            mcuboot::swap_type(&mut flash, &primary, &secondary),
            Swap::Perm
        );

        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}: installed");
        assert_eq!((t.trial, t.event), (false, BootEvent::Installed), "{name}");
        assert_eq!(primary.magic_state(&mut flash), State::Good, "{name}");
        assert_eq!(
            primary.flag(&mut flash, primary.image_ok_off()),
            State::Good
        );
        assert_eq!(
            primary.flag(&mut flash, primary.copy_done_off()),
            State::Good
        );
        assert_eq!(primary.swap_info(&mut flash), Some(3), "{name}");
        assert!(primary.boot_is_img_confirmed(&mut flash), "{name}");
        assert_ne!(secondary.magic_state(&mut flash), State::Good, "{name}");
        assert_eq!(
            mcuboot::swap_type(&mut flash, &primary, &secondary),
            Swap::None
        );
        assert_eq!(
            state(&scn, &mut flash).floor_version,
            packed(NEW_VERSION),
            "{name}"
        );
        settled(&scn, &mut flash, &scn.new);
    }
}

/// Row 4 (REVERT): after a test install the primary trailer holds, byte for byte, what
/// MCUboot leaves after a test swap: the magic chunk, copy_done 0x01 and swap_info TEST
/// each padded with the erased value to the write unit, image_ok erased. The engine's own
/// codec reads the same fields.
#[test]
fn row4_primary_trailer_after_a_test_install_is_mcuboots() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        let mut flash = scn.initial_flash();
        let (primary, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, false)
            .unwrap()
            .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(t.trial, "{name}");

        let (wu, e) = (primary.write_size as usize, primary.erased);
        let a = primary.max_align() as usize;
        let chunk = 16usize.div_ceil(a) * a;
        let mut magic = vec![0u8; chunk];
        flash
            .read(primary.off + primary.size - chunk as u32, &mut magic)
            .unwrap();
        let mut want = vec![e; chunk - 16];
        want.extend_from_slice(&primary.magic());
        assert_eq!(magic, want, "{name}: magic chunk");
        for (off, byte) in [
            (primary.image_ok_off(), e),
            (primary.copy_done_off(), 1),
            (primary.swap_info_off(), 2),
        ] {
            let mut unit = vec![0u8; wu];
            flash.read(primary.off + off, &mut unit).unwrap();
            let mut want = vec![e; wu];
            want[0] = byte;
            assert_eq!(unit, want, "{name}: field at {off:#x}");
        }
        assert_eq!(
            mcuboot::swap_type(&mut flash, &primary, &secondary),
            Swap::Revert
        );
        // The engine's codec agrees with the re-implementation.
        let fields = Trailer::primary(&scn.layout).unwrap().read(&mut flash);
        assert_eq!(
            brickless_boot::trailer::swap_type(
                &fields,
                &Trailer::staging(&scn.layout).unwrap().read(&mut flash)
            ),
            brickless_boot::trailer::SwapType::Revert,
            "{name}"
        );
        // And the engine does what row 4 says.
        let t = booted(&scn, &mut flash);
        assert_eq!(t.event, BootEvent::Reverted, "{name}");
        assert!(runs(&flash, &t, &scn.old), "{name}");
    }
}

/// Row 5 (NONE): a staged image without a trailer, a good magic with a garbled image_ok,
/// and a primary trailer alone change nothing: the old image boots and nothing is written.
#[test]
fn row5_no_request_nothing_happens() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        let (primary, secondary) = areas(&scn);
        let e = scn.layout.erased();
        let wu = scn.layout.write_unit() as usize;
        let garbled_image_ok = |flash: &mut SimFlash| {
            secondary.boot_set_pending(flash, false).unwrap().unwrap();
            let mut unit = vec![e; wu];
            unit[0] = 0x5A;
            flash
                .write(secondary.off + secondary.image_ok_off(), &unit)
                .unwrap();
        };
        let primary_only = |flash: &mut SimFlash| {
            // A primary trailer as a first swap leaves it, without a request: row 4 for
            // MCUboot, but the engine is idle and its state is the truth.
            let mut m = vec![
                e;
                16usize.div_ceil(primary.max_align() as usize)
                    * primary.max_align() as usize
            ];
            let n = m.len();
            m[n - 16..].copy_from_slice(&primary.magic());
            flash
                .write(primary.off + primary.size - n as u32, &m)
                .unwrap();
        };
        let setups: [(&str, Setup); 3] = [
            ("no trailer", &|_| {}),
            ("garbled image_ok", &garbled_image_ok),
            ("primary trailer only", &primary_only),
        ];
        for (what, setup) in setups {
            let mut flash = scn.initial_flash();
            setup(&mut flash);
            let ops = flash.op_count();
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.old), "{name}, {what}");
            assert_eq!(
                (t.trial, t.event),
                (false, BootEvent::None),
                "{name}, {what}"
            );
            assert_eq!(flash.op_count(), ops, "{name}, {what}: wrote flash");
            assert_eq!(
                state(&scn, &mut flash),
                BootState::FACTORY,
                "{name}, {what}"
            );
        }
    }
}

/// Row 5 (NONE) for a bad secondary magic (garbage, or a magic write torn by a power cut):
/// `boot_set_pending` refuses it as MCUboot does, the old image boots, nothing is written,
/// and the engine's own request path still works.
#[test]
fn a_bad_or_torn_magic_is_no_request_and_breaks_nothing() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        let (_, secondary) = areas(&scn);
        let garbage = |flash: &mut SimFlash| {
            let junk: Vec<u8> = (0..16u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
            flash
                .preload(scn.layout.staging().end() - 16, &junk)
                .unwrap();
        };
        let torn = |flash: &mut SimFlash| {
            // The application loses power inside its magic write.
            flash.arm_cut(CutPoint::new(flash.op_count(), CutPhase::Torn));
            assert!(secondary.boot_set_pending(flash, false).is_err());
            flash.disarm_cut();
            flash.power_cycle();
        };
        let setups: [(&str, Setup); 2] = [("garbage", &garbage), ("torn", &torn)];
        for (what, setup) in setups {
            let mut flash = scn.initial_flash();
            setup(&mut flash);
            if secondary.magic_state(&mut flash) == State::Unset {
                // A torn write that left every bit erased is a cut before the write.
                continue;
            }
            assert_eq!(
                secondary.magic_state(&mut flash),
                State::Bad,
                "{name}, {what}"
            );
            assert_eq!(
                secondary.boot_set_pending(&mut flash, false).unwrap(),
                Err(mcuboot::BadImage),
                "{name}, {what}"
            );
            let ops = flash.op_count();
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.old), "{name}, {what}");
            assert_eq!(t.event, BootEvent::None, "{name}, {what}");
            assert_eq!(flash.op_count(), ops, "{name}, {what}: wrote flash");
            // The engine's own request still works over the bad trailer.
            Updater::new(&mut flash, scn.layout, scn.check)
                .request_upgrade(UpgradeMode::Test)
                .unwrap();
            let t = booted(&scn, &mut flash);
            assert!(t.trial && runs(&flash, &t, &scn.new), "{name}, {what}");
        }
    }
}

/// Row 2 (TEST) on the overwrite strategy, which cannot revert: installed for good, as
/// MCUboot's overwrite-only build does with a test request.
#[test]
fn row2_test_request_on_overwrite_is_installed_for_good() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Overwrite, Flow::Permanent);
        let mut flash = scn.initial_flash();
        let (primary, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, false)
            .unwrap()
            .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.new), "{name}");
        assert_eq!((t.trial, t.event), (false, BootEvent::Installed), "{name}");
        assert!(primary.boot_is_img_confirmed(&mut flash), "{name}");
        assert_ne!(secondary.magic_state(&mut flash), State::Good, "{name}");
        settled(&scn, &mut flash, &scn.new);
    }
}

/// Row 3 (PERM) for an older image: refused like any downgrade, and the request is retired
/// so it is not tried at every boot.
#[test]
fn row3_request_for_a_downgrade_is_refused_once() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::Downgrade);
        let mut flash = scn.initial_flash();
        let (_, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, true)
            .unwrap()
            .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.old), "{name}: refused");
        assert_eq!(t.event, BootEvent::None, "{name}");
        assert_ne!(secondary.magic_state(&mut flash), State::Good, "{name}");
        assert_eq!(state(&scn, &mut flash).phase, Phase::Idle, "{name}");
        settled(&scn, &mut flash, &scn.old);
    }
}

/// Row 2 (TEST) for a staged image that does not verify (one payload byte flipped): nothing
/// is installed and the request is retired, as MCUboot erases an invalid secondary.
#[test]
fn row2_request_for_an_image_that_does_not_verify_is_dropped_once() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestRevert);
        let mut flash = scn.initial_flash();
        let at = scn.layout.staging().start + 0x100;
        let mut b = [0u8; 1];
        flash.read_abs(at, &mut b).unwrap();
        flash.preload(at, &[b[0] ^ 0x40]).unwrap();
        let (_, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, false)
            .unwrap()
            .unwrap();
        let t = booted(&scn, &mut flash);
        assert!(runs(&flash, &t, &scn.old), "{name}");
        assert_ne!(secondary.magic_state(&mut flash), State::Good, "{name}");
        settled(&scn, &mut flash, &scn.old);
    }
}

/// Row 2 (TEST) with the primary slot's trailer area programmed with the erased value by a
/// factory tool (a padded image): the trailer still lands (erased, then written once more),
/// reads back clean, and the trial can confirm itself through it.
#[test]
fn row2_over_a_factory_filled_primary_trailer_still_confirms() {
    for name in PARTS {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let mut flash = scn.initial_flash();
        let (primary, secondary) = areas(&scn);
        let t = Trailer::primary(&scn.layout).unwrap();
        let fill_from = scn.layout.spec().primary.start + (t.start() - primary.off);
        let fill_len = primary.off + primary.size - t.start();
        flash
            .fill(fill_from, fill_len, scn.layout.erased())
            .unwrap();
        secondary
            .boot_set_pending(&mut flash, false)
            .unwrap()
            .unwrap();
        let b = booted(&scn, &mut flash);
        assert!(b.trial && runs(&flash, &b, &scn.new), "{name}");
        assert!(
            flash.scan_torn(fill_from..fill_from + fill_len).is_empty(),
            "{name}: the trailer reads back without ECC faults"
        );
        assert!(!primary.boot_is_img_confirmed(&mut flash), "{name}");
        primary.boot_set_confirmed(&mut flash).unwrap();
        let b = booted(&scn, &mut flash);
        assert!(!b.trial && runs(&flash, &b, &scn.new), "{name}: kept");
    }
}

/// A signed update of exactly `size` bytes (the kit sizes the payload from an estimate of
/// the TLVs; their size is fixed, so one correction lands on it).
fn image_of(kit: &McubootKit, size: u32, wu: u32) -> Vec<u8> {
    let mut ask = size;
    for _ in 0..4 {
        let img = kit.build(NEW_VERSION, 3, ask, 9, wu);
        if img.len() as u32 == size {
            return img;
        }
        ask = (ask + size).checked_sub(img.len() as u32).unwrap();
    }
    panic!("no image of {size} bytes");
}

/// An image that reaches into the trailer area has no trailer: the engine writes none over
/// it, its bytes there stay the image's, and the trial reverts as usual (row 5 for MCUboot:
/// no good magic). One that ends right where the trailer starts shares the trailer's unit
/// and sector, and gets the trailer after its last byte: row 4 during its trial, and
/// `boot_set_confirmed` keeps it.
#[test]
fn an_image_reaching_the_trailer_has_none_and_one_ending_before_it_has_one() {
    let kit = McubootKit::new();
    for name in ["stm32l475vg", "stm32h7a3zi", "stm32h753zi"] {
        let scn = scenario(name, StrategyKind::Swap, Flow::TestConfirm);
        let (primary, secondary) = areas(&scn);
        let t = Trailer::primary(&scn.layout).unwrap();
        let room = t.start() - primary.off;
        let wu = scn.layout.write_unit();
        for (size, has_trailer) in [(room + wu, false), (room, true)] {
            let image = image_of(&kit, size, wu);
            assert_eq!(t.clear_of(size), has_trailer, "{name}: {size:#x}");
            let mut flash = SimFlash::with_seed(scn.part, 1);
            let spec = scn.layout.spec();
            flash.preload(spec.primary.start, &scn.old).unwrap();
            flash.preload(scn.layout.staging().start, &image).unwrap();
            Updater::new(&mut flash, scn.layout, scn.check)
                .request_upgrade(UpgradeMode::Test)
                .unwrap();
            let b = booted(&scn, &mut flash);
            assert!(b.trial && runs(&flash, &b, &image), "{name}: {size:#x}");
            let swap = mcuboot::swap_type(&mut flash, &primary, &secondary);
            if has_trailer {
                assert_eq!(swap, Swap::Revert, "{name}: {size:#x}");
                primary.boot_set_confirmed(&mut flash).unwrap();
                let b = booted(&scn, &mut flash);
                assert!(!b.trial && runs(&flash, &b, &image), "{name}: kept");
            } else {
                assert_eq!(swap, Swap::None, "{name}: {size:#x}");
                assert_ne!(primary.magic_state(&mut flash), State::Good, "{name}");
                let b = booted(&scn, &mut flash);
                assert_eq!(b.event, BootEvent::Reverted, "{name}: {size:#x}");
            }
        }
    }
}

/// Row 2 (TEST) for the very image already installed for good, on a layout where it ends
/// right before the trailer: the copy skips its last unit as identical, under the trailer
/// its permanent install left (image_ok set). That stale trailer must not pass for a
/// confirmation: the engine rewrites it (the unit is erased and copied again), the trial
/// reads as unconfirmed, and without `boot_set_confirmed` the next reset reverts.
#[test]
fn row2_for_the_installed_image_again_gets_a_fresh_trailer() {
    let kit = McubootKit::new();
    for name in ["stm32l475vg", "stm32h753zi"] {
        let small = reduced_part(part(name).unwrap());
        let layout = reduced_layout(small, StrategyKind::Swap).unwrap();
        let mut scn = Scenario::with_kit(small, layout, Flow::Permanent, Kit::Mcuboot);
        scn.buffer = (layout.unit() / 2) as usize;
        let t = Trailer::primary(&layout).unwrap();
        let room = t.start() - layout.offset(layout.spec().primary.start);
        scn.new = image_of(&kit, room, layout.write_unit());
        let mut flash = scn.initial_flash();
        let (primary, secondary) = areas(&scn);
        secondary
            .boot_set_pending(&mut flash, true)
            .unwrap()
            .unwrap();
        let b = booted(&scn, &mut flash);
        assert_eq!(b.event, BootEvent::Installed, "{name}");
        assert_eq!(
            primary.flag(&mut flash, primary.image_ok_off()),
            State::Good
        );

        // The same image staged again, as a test.
        let mut u = Updater::new(&mut flash, scn.layout, scn.check);
        u.erase_staging().unwrap();
        u.write_staged(0, &scn.new).unwrap();
        secondary
            .boot_set_pending(&mut flash, false)
            .unwrap()
            .unwrap();
        let b = booted(&scn, &mut flash);
        assert!(b.trial && runs(&flash, &b, &scn.new), "{name}");
        assert!(
            !primary.boot_is_img_confirmed(&mut flash),
            "{name}: stale trailer"
        );
        assert_eq!(primary.swap_info(&mut flash), Some(2), "{name}");
        let b = booted(&scn, &mut flash);
        assert_eq!(b.event, BootEvent::Reverted, "{name}");
        assert!(
            runs(&flash, &b, &scn.new),
            "{name}: the same image, reverted to"
        );
    }
}

/// Garbage, torn units and half-right trailers (a good magic with random fields) in both
/// trailers never brick, on both strategies: every boot starts the old or the new image (the
/// new one only through a request the trailer really makes), the device settles, and a
/// native update works afterwards.
#[test]
fn hostile_trailers_never_brick() {
    let mut rng = 0x07A1_1E25_u64;
    let mut next = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as u32
    };
    for name in PARTS {
        for strategy in strategies_for(part(name).unwrap()) {
            let scn = scenario(name, strategy, Flow::TestConfirm);
            let wu = scn.layout.write_unit();
            let slots = [scn.layout.spec().primary, scn.layout.staging()];
            for round in 0..12 {
                let mut flash = scn.initial_flash();
                for (i, slot) in slots.iter().enumerate() {
                    let span = 160u32.min(slot.size); // every field, with any alignment
                    let t = Trailer::new(0, slot.size, wu, scn.layout.erased()).unwrap();
                    let mut bytes: Vec<u8> = (0..span).map(|_| next() as u8).collect();
                    if (round + i) % 3 == 0 {
                        // A good magic over random fields.
                        let n = bytes.len();
                        bytes[n - 16..].copy_from_slice(&t.magic());
                    }
                    let at = slot.end() - span;
                    if next() % 2 == 0 {
                        flash.preload(at, &bytes).unwrap();
                    } else {
                        // Written, torn somewhere.
                        flash.arm_cut(CutPoint::new(flash.op_count(), CutPhase::Torn));
                        let _ = flash.write(scn.layout.offset(at), &bytes);
                        flash.disarm_cut();
                        flash.power_cycle();
                    }
                }
                let what = format!("{name} {} round {round}", strategy.name());
                let mut settled_on = None;
                for _ in 0..6 {
                    let ops = flash.op_count();
                    let t = booted(&scn, &mut flash);
                    assert!(
                        runs(&flash, &t, &scn.old) || runs(&flash, &t, &scn.new),
                        "{what}: neither image"
                    );
                    if flash.op_count() == ops && !t.trial {
                        settled_on = Some(runs(&flash, &t, &scn.new));
                        break;
                    }
                }
                let Some(new) = settled_on else {
                    panic!("{what}: did not settle")
                };
                if new {
                    continue; // the garbage made a real request
                }
                let mut u = Updater::new(&mut flash, scn.layout, scn.check);
                u.erase_staging().unwrap();
                u.write_staged(0, &padded(&scn.new, wu)).unwrap();
                let mode = if strategy.can_revert() {
                    UpgradeMode::Test
                } else {
                    UpgradeMode::Permanent
                };
                u.request_upgrade(mode).unwrap();
                let t = booted(&scn, &mut flash);
                assert!(runs(&flash, &t, &scn.new), "{what}: the native update");
                Updater::new(&mut flash, scn.layout, scn.check)
                    .confirm()
                    .unwrap();
                settled(&scn, &mut flash, &scn.new);
            }
        }
    }
}

/// `image` padded with 0xFF to whole write units (for `write_staged`).
fn padded(image: &[u8], wu: u32) -> Vec<u8> {
    let mut v = image.to_vec();
    v.resize(image.len().div_ceil(wu as usize) * wu as usize, 0xFF);
    v
}

/// Dual-bank parts with the bank-swap strategy.
const BANK_PARTS: [&str; 3] = ["stm32h753zi", "stm32l475vg", "stm32g474re"];

/// Rows 2, 3 and 4 on the bank-swap strategy, which maps the staged bank in, trailer and
/// all, instead of copying: a test request gives a trial that reverts (the rejected bank,
/// now the staging area, asks for nothing) or is kept by `boot_set_confirmed`; a permanent
/// one installs for good; and a second test update, staged over the first one's old bank,
/// reverts to the first one as confirmed.
#[test]
fn bank_swap_rows_2_3_and_4_flip_instead_of_copying() {
    let kit = McubootKit::new();
    for name in BANK_PARTS {
        for mode in [Mode::Revert, Mode::Confirm, Mode::Permanent] {
            let scn = scenario(name, StrategyKind::BankSwap, flow(mode));
            let mut flash = scn.initial_flash();
            let (primary, secondary) = areas(&scn);
            let permanent = mode == Mode::Permanent;
            secondary
                .boot_set_pending(&mut flash, permanent)
                .unwrap()
                .unwrap();
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, &scn.new), "{name} {mode:?}");
            assert_eq!(t.trial, !permanent, "{name} {mode:?}");
            assert_eq!(primary.boot_is_img_confirmed(&mut flash), permanent);
            assert!(
                !asks(&secondary, &mut flash),
                "{name} {mode:?}: request retired"
            );
            if mode == Mode::Confirm {
                primary.boot_set_confirmed(&mut flash).unwrap();
            }
            let (kept, old) = (mode != Mode::Revert, &scn.old);
            let image = if kept { &scn.new } else { old };
            let t = booted(&scn, &mut flash);
            assert!(runs(&flash, &t, image), "{name} {mode:?}: after the reset");
            assert!(!t.trial, "{name} {mode:?}");
            assert!(primary.boot_is_img_confirmed(&mut flash), "{name} {mode:?}");
            assert!(
                !asks(&secondary, &mut flash),
                "{name} {mode:?}: nothing asks"
            );
            settled(&scn, &mut flash, image);
            if mode != Mode::Confirm {
                continue;
            }
            // A second update, staged where the first one's old image was: a trial, then
            // reverted to the first update, which reads as confirmed.
            let third = kit.build(
                ImageVersion::new(1, 4, 0, 0),
                4,
                scn.layout.unit(),
                33,
                scn.layout.write_unit(),
            );
            let mut u = Updater::new(&mut flash, scn.layout, scn.check);
            u.erase_staging().unwrap();
            u.write_staged(0, &padded(&third, scn.layout.write_unit()))
                .unwrap();
            secondary
                .boot_set_pending(&mut flash, false)
                .unwrap()
                .unwrap();
            let t = booted(&scn, &mut flash);
            assert!(t.trial && runs(&flash, &t, &third), "{name}: second trial");
            assert!(!primary.boot_is_img_confirmed(&mut flash), "{name}");
            assert!(
                !asks(&secondary, &mut flash),
                "{name}: the first update's bank"
            );
            let t = booted(&scn, &mut flash);
            assert_eq!(t.event, BootEvent::Reverted, "{name}");
            assert!(
                runs(&flash, &t, &scn.new),
                "{name}: back to the first update"
            );
            assert!(primary.boot_is_img_confirmed(&mut flash), "{name}");
            assert!(!asks(&secondary, &mut flash), "{name}: the rejected bank");
            settled(&scn, &mut flash, &scn.new);
        }
    }
}

/// Row 2 must come from an application, which never writes copy_done: a staging trailer
/// with copy_done set is a primary trailer the engine wrote that a bank flip mapped there,
/// and asks for nothing, even when the image it belongs to would be accepted again (same
/// version). Here the first update reaches the trailer's sector, so its trailer stays in the
/// staging area while the second update runs.
#[test]
fn bank_swap_a_former_primary_trailer_in_staging_asks_for_nothing() {
    let kit = McubootKit::new();
    for name in ["stm32l475vg", "stm32h753zi"] {
        let scn = scenario(name, StrategyKind::BankSwap, Flow::TestConfirm);
        let (primary, secondary) = areas(&scn);
        let wu = scn.layout.write_unit();
        let room = Trailer::primary(&scn.layout).unwrap().start() - primary.off;
        let first = image_of(&kit, room, wu);
        let second = kit.build(NEW_VERSION, 3, scn.layout.unit(), 44, wu);
        let mut flash = scn.initial_flash();
        for image in [&first, &second] {
            let mut u = Updater::new(&mut flash, scn.layout, scn.check);
            u.erase_staging().unwrap();
            u.write_staged(0, &padded(image, wu)).unwrap();
            u.request_upgrade(UpgradeMode::Test).unwrap();
            let t = booted(&scn, &mut flash);
            assert!(t.trial && runs(&flash, &t, image), "{name}");
            assert_eq!(
                primary.flag(&mut flash, primary.copy_done_off()),
                State::Good
            );
            Updater::new(&mut flash, scn.layout, scn.check)
                .confirm()
                .unwrap();
        }
        // The first update's trailer, in what is now the staging area.
        assert_eq!(secondary.magic_state(&mut flash), State::Good, "{name}");
        assert_eq!(
            secondary.flag(&mut flash, secondary.copy_done_off()),
            State::Good
        );
        settled(&scn, &mut flash, &second);
    }
}

// ---- power cuts ------------------------------------------------------------------------------

/// What the MCUboot-built application does around its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `boot_set_pending(0)`; the trial never confirms: it must be reverted.
    Revert,
    /// `boot_set_pending(0)`; the trial calls `boot_set_confirmed()`.
    Confirm,
    /// `boot_set_pending(1)`.
    Permanent,
}

/// What a life of an MCUboot-built application saw, across resets.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// Boots of the update.
    new_boots: u32,
    /// The install reached the primary slot (a plan or a trial was recorded, or the update
    /// booted).
    installed: bool,
    /// The install is over: reverted, or back to `Idle` with the update in place.
    done: bool,
    /// The application started confirming the trial in the primary trailer.
    confirm_tried: bool,
    /// ... and its write completed.
    confirmed: bool,
}

enum End {
    PowerLost,
    Stable(bool),
}

/// Boots until nothing changes, as an MCUboot-built application that asked for the update
/// before the first boot and behaves as `mode` says. Checks at every boot that the image is
/// the old or the new one, that no trial starts with the request still in place, and that
/// the update is not installed again once its install is over.
fn life(scn: &Scenario, flash: &mut SimFlash, seen: &mut Seen, mode: Mode) -> Result<End, String> {
    let (primary, secondary) = areas(scn);
    let mut buf = vec![0u8; scn.buffer];
    for n in 1..=10 {
        let before = flash.op_count();
        observe(scn, flash, seen, mode)?;
        let result = boot_device(flash, scn.layout, scn.check, scn.policy, &mut buf);
        if flash.is_powered() {
            observe(scn, flash, seen, mode)?;
            let phase = state(scn, flash).phase;
            if phase == Phase::Trial && secondary.magic_state(flash) == State::Good {
                return Err(format!("boot {n}: a trial with the request still in place"));
            }
        }
        let t = match result {
            Ok(BootDecision::Boot(t)) => t,
            Ok(other) => return Err(format!("boot {n}: {other:?}")),
            Err(_) if !flash.is_powered() => return Ok(End::PowerLost),
            Err(e) => return Err(format!("boot {n}: {e} with power on")),
        };
        let mut wrote = false;
        if runs(flash, &t, &scn.new) {
            seen.new_boots += 1;
            seen.installed = true;
            if mode == Mode::Confirm && !seen.confirmed && t.trial {
                wrote = true;
                seen.confirm_tried = true;
                if primary.boot_set_confirmed(flash).is_err() {
                    return Ok(End::PowerLost);
                }
                seen.confirmed = true;
            }
        } else if !runs(flash, &t, &scn.old) {
            return Err(format!("boot {n}: neither the old nor the new image"));
        }
        if flash.op_count() == before && !wrote {
            return Ok(End::Stable(runs(flash, &t, &scn.new)));
        }
    }
    Err("not settled after 10 boots".into())
}

/// Follows the recorded phase: once the install is over, no new install may start; for a
/// test request not even a new request (the trailer was retired before the trial).
fn observe(
    scn: &Scenario,
    flash: &mut SimFlash,
    seen: &mut Seen,
    mode: Mode,
) -> Result<(), String> {
    match state(scn, flash).phase {
        Phase::Swapping | Phase::Trial if seen.done => {
            Err("the update is installed again after its install was over".into())
        }
        Phase::Swapping | Phase::Trial => {
            seen.installed = true;
            Ok(())
        }
        Phase::Pending if seen.installed && mode != Mode::Permanent => {
            Err("the test request was taken again after its install".into())
        }
        Phase::Idle if seen.installed => {
            seen.done = true;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Cuts power at every operation (before, inside and after it) of a trailer-requested
/// upgrade, its trial and its revert or confirmation, then lets the device run uncut: every
/// boot starts the old or the new image; the request is neither lost (the update reaches the
/// primary slot) nor run again once its install is over; an unconfirmed update boots at most
/// once; the device settles on the image the mode asks for (either, when the cut took the
/// confirmation itself) with the request retired.
fn every_cut(name: &str, mode: Mode) {
    every_cut_of(&scenario(name, StrategyKind::Swap, flow(mode)), mode);
}

fn flow(mode: Mode) -> Flow {
    match mode {
        Mode::Revert => Flow::TestRevert,
        Mode::Confirm => Flow::TestConfirm,
        Mode::Permanent => Flow::Permanent,
    }
}

fn every_cut_of(scn: &Scenario, mode: Mode) {
    let scn = scn.clone();
    let name = scn.part.name;
    let mut start = scn.initial_flash();
    let (_, secondary) = areas(&scn);
    let permanent = mode == Mode::Permanent;
    secondary
        .boot_set_pending(&mut start, permanent)
        .unwrap()
        .unwrap();
    let wanted = |seen: &Seen, new: bool| match mode {
        Mode::Revert => !new,
        Mode::Permanent => new,
        // A confirmation cut short may or may not have landed.
        Mode::Confirm => new == seen.confirmed || (seen.confirm_tried && !seen.confirmed),
    };

    let mut probe = start.clone();
    let mut seen = Seen::default();
    let first = probe.op_count();
    match life(&scn, &mut probe, &mut seen, mode) {
        Ok(End::Stable(new)) => assert!(wanted(&seen, new), "{name}: uncut settled on {new}"),
        Ok(End::PowerLost) => panic!("{name}: power lost uncut"),
        Err(why) => panic!("{name}: uncut: {why}"),
    }
    let ops = first..probe.op_count();
    println!(
        "{name} {mode:?}: {} operations cut 3 ways",
        ops.end - ops.start
    );
    assert!(ops.end - ops.start >= 5, "{name}: {ops:?}");
    let mut failures = Vec::new();
    for op in ops.clone() {
        for phase in CutPhase::ALL {
            let cut = CutPoint::new(op, phase);
            let mut flash = start.clone();
            let mut seen = Seen::default();
            flash.arm_cut(cut);
            let first = life(&scn, &mut flash, &mut seen, mode);
            flash.disarm_cut();
            flash.power_cycle();
            let verdict = first.and_then(|_| life(&scn, &mut flash, &mut seen, mode));
            let verdict = match verdict {
                Ok(End::Stable(new)) => {
                    if !seen.installed {
                        Err("the request was lost".to_string())
                    } else if !wanted(&seen, new) {
                        Err(format!(
                            "settled on the {} image",
                            if new { "new" } else { "old" }
                        ))
                    } else if seen.new_boots > 1 && mode == Mode::Revert {
                        Err(format!(
                            "the unconfirmed update booted {} times",
                            seen.new_boots
                        ))
                    } else if asks(&secondary, &mut flash) {
                        Err("the request is still in place".to_string())
                    } else {
                        Ok(())
                    }
                }
                Ok(End::PowerLost) => Err("power lost without a cut".into()),
                Err(why) => Err(why),
            };
            if let Err(why) = verdict {
                failures.push(format!("{cut}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cuts failed: {:#?}",
        failures.len(),
        3 * (ops.end - ops.start),
        &failures[..failures.len().min(8)]
    );
}

/// Row 2 (TEST) then row 4 (REVERT), cut everywhere (write unit 8).
#[test]
fn every_cut_of_a_trailer_test_upgrade_and_its_revert_l475() {
    every_cut("stm32l475vg", Mode::Revert);
}

/// Row 2 (TEST) then row 4 (REVERT), cut everywhere (write unit 16).
#[test]
fn every_cut_of_a_trailer_test_upgrade_and_its_revert_h7a3() {
    every_cut("stm32h7a3zi", Mode::Revert);
}

/// Row 2 (TEST) then row 4 (REVERT), cut everywhere (write unit 32).
#[test]
fn every_cut_of_a_trailer_test_upgrade_and_its_revert_h753() {
    every_cut("stm32h753zi", Mode::Revert);
}

/// Row 2 (TEST) then `boot_set_confirmed` (row 5), cut everywhere, the confirmation included
/// (write unit 8; erased 0x00 on L073; 32 on H753).
#[test]
fn every_cut_of_a_trailer_test_upgrade_confirmed_by_the_app() {
    for name in ["stm32l475vg", "stm32l073rz", "stm32h753zi"] {
        every_cut(name, Mode::Confirm);
    }
}

/// Rows 2 then 4 (a trial, reverted or confirmed) and row 3, cut everywhere, with an update
/// that ends right where the trailer starts: it fills the last unit of both slots, so the
/// primary trailer goes into the unit the copy erased and the staging trailer shares its
/// sector with the update's end (retired only once the install is over). On small arrays
/// (1 KiB sectors, 2 KiB with 32-byte units) with write units 8, 16, 32 and 4 (erased 0x00).
#[test]
fn every_cut_with_an_update_that_ends_at_the_trailer() {
    let kit = McubootKit::new();
    for name in ["stm32l475vg", "stm32h7a3zi", "stm32h753zi", "stm32l073rz"] {
        for mode in [Mode::Revert, Mode::Confirm, Mode::Permanent] {
            let small = reduced_part(part(name).unwrap());
            let layout = reduced_layout(small, StrategyKind::Swap).unwrap();
            let mut scn = Scenario::with_kit(small, layout, flow(mode), Kit::Mcuboot);
            scn.buffer = (layout.unit() / 2) as usize;
            let t = Trailer::primary(&layout).unwrap();
            let room = t.start() - layout.offset(layout.spec().primary.start);
            scn.new = image_of(&kit, room, layout.write_unit());
            every_cut_of(&scn, mode);
        }
    }
}

/// Rows 2 then 4 (reverted or confirmed) and row 3 on the bank-swap strategy, cut
/// everywhere, the flips (option-byte programs) included.
#[test]
fn every_cut_of_trailer_upgrades_on_bank_swap() {
    for name in ["stm32h753zi", "stm32l475vg"] {
        for mode in [Mode::Revert, Mode::Confirm, Mode::Permanent] {
            every_cut_of(&scenario(name, StrategyKind::BankSwap, flow(mode)), mode);
        }
    }
}

/// Row 3 (PERM), cut everywhere (write units 8, 16 and 32; 4 without ECC on F407).
#[test]
fn every_cut_of_a_trailer_permanent_upgrade() {
    for name in ["stm32l475vg", "stm32u585ai", "stm32h753zi", "stm32f407vg"] {
        every_cut(name, Mode::Permanent);
    }
}

/// The floor's starting point: [`OLD_VERSION`] is what the factory image carries.
#[test]
fn the_scenarios_start_from_the_old_version() {
    let scn = scenario("stm32l475vg", StrategyKind::Swap, Flow::TestRevert);
    let mut flash = scn.initial_flash();
    let t = booted(&scn, &mut flash);
    assert_eq!(t.image.version, OLD_VERSION);
}
