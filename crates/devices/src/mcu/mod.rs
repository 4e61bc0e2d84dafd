//! The virtual STM32 running brickless: the faithful flash model, the real engine's
//! bootloader side at every reset, then the booted image's application model serving SMP
//! (as Zephyr's `smp_svr` sample does), or the bootloader's recovery SMP when nothing
//! verifies. Power can be cut at the Nth flash operation, at random, or on command; the
//! device then restarts from what the flash holds.
//!
//! [`VirtualMcu`] is the device without a link (tests and `brickless demo` drive it in
//! process); [`serve`] puts it on UDP and a pty.

pub mod serve;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{BootDecision, BootEvent, BootLoader, ImageInfo, Layout, Updater};
use brickless_flash_model::{CutPhase, CutPoint, SimFlash};
use brickless_image::PublicKey;
use brickless_smp::{
    Board, Mode, Outcome, ProtectFailure, ProtectionStatus, Server, ServerConfig, WriteProtection,
};

/// The request size the device advertises (`buf_size`): a large buffer, so a stock client
/// sends few, large chunks.
pub const BUF_SIZE: u32 = 4096;

/// Whether the application model confirms a trial boot by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfConfirm {
    /// Confirms at boot, as an application that passed its self-test.
    Always,
    /// Never confirms: a trial image is reverted at the next reset.
    Never,
}

/// What a reset did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Booted {
    /// The application runs this verified image.
    App {
        /// What the image check reported.
        image: ImageInfo,
        /// It runs as a trial.
        trial: bool,
        /// What the boot did before starting it.
        event: BootEvent,
        /// The application confirmed itself at boot.
        confirmed_now: bool,
    },
    /// Nothing verifies: the bootloader serves recovery SMP.
    Recovery,
    /// Power was lost during the boot (a cut armed for a boot-time operation).
    PowerLost,
    /// The engine reported a flash failure with power on.
    Failed(String),
}

/// A virtual MCU: flash, layout, trusted keys, the SMP server and what booted.
pub struct VirtualMcu {
    flash: SimFlash,
    layout: Layout,
    keys: Box<[PublicKey]>,
    server: Server,
    booted: Booted,
    self_confirm: SelfConfirm,
    boots: u64,
    changed: bool,
    flash_time: Option<FlashTime>,
    random_cuts: Option<RandomCuts>,
    protection: ModelledProtection,
}

/// The device's self-protection as the protect command sees it: read-out level 0, and the
/// bootloader's write protection, off until a client sets it. Effective at once (as on
/// F4/F7/H7); kept in RAM only: a restarted process starts unprotected (the flash model has
/// no option bytes yet).
#[derive(Clone, Copy, Debug, Default)]
struct ModelledProtection {
    bootloader_protected: bool,
}

impl Board for ModelledProtection {
    fn protection(&mut self) -> Option<ProtectionStatus> {
        Some(ProtectionStatus {
            readout_level: 0,
            bootloader: if self.bootloader_protected {
                WriteProtection::Full
            } else {
                WriteProtection::None
            },
        })
    }

    fn protect_bootloader(&mut self) -> Result<bool, ProtectFailure> {
        self.bootloader_protected = true;
        Ok(false)
    }
}

/// Power cuts at random flash operations: after each power-up, one within the next `span`.
#[derive(Clone, Copy, Debug)]
struct RandomCuts {
    span: u64,
    state: u64,
}

impl RandomCuts {
    /// 1..=span, from a seeded xorshift (reproducible runs; no dependency needed).
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        1 + self.state % self.span.max(1)
    }
}

/// The brickless group command a virtual device takes to cut its own power
/// (`{"after_ops": N}`: inside the Nth flash operation from now, 0 the next one). Real
/// devices do not answer it.
pub const SIM_CUT_POWER: u8 = 0x7F;

/// The body of a [`SIM_CUT_POWER`] request.
pub fn sim_cut_body(after_ops: u64) -> Vec<u8> {
    let mut body = Vec::new();
    let mut e = minicbor::Encoder::new(&mut body);
    // Writing into a Vec cannot fail.
    let _ = e
        .map(1)
        .and_then(|e| e.str("after_ops"))
        .and_then(|e| e.u64(after_ops));
    body
}

/// The modelled time of flash work: operations run one after another; an upload chunk is
/// answered once it fits the RAM the device sets aside for upload data (the chunks ahead
/// of it still waiting for flash take the rest), so erasing and programming overlap the
/// transfer; everything else is answered once all flash work is done.
#[derive(Debug, Default)]
struct FlashTime {
    busy_until: Option<Instant>,
    /// Chunks not yet programmed: when their flash work ends, and their bytes.
    pending: VecDeque<(Instant, usize)>,
    /// Bytes of RAM for chunks waiting for flash.
    ram: usize,
}

/// RAM a device sets aside for upload data waiting for flash: up to 128 KiB of the part's
/// modelled RAM (STM32H7s have more SRAM still, beside the DTCM modelled).
fn upload_ram(part: &brickless_flash::Part) -> usize {
    (part.ram_size as usize).min(128 * 1024)
}

/// Resets in a row the bootloader may ask for (bank swap: one per flip).
const MAX_RESETS: u32 = 4;

impl VirtualMcu {
    /// A device over `flash` with `layout`, trusting `keys`; powered off until [`reset`](Self::reset).
    pub fn new(
        flash: SimFlash,
        layout: Layout,
        keys: Vec<PublicKey>,
        self_confirm: SelfConfirm,
    ) -> Self {
        VirtualMcu {
            flash,
            layout,
            keys: keys.into_boxed_slice(),
            server: Server::new(config(Mode::Recovery)),
            booted: Booted::Recovery,
            self_confirm,
            boots: 0,
            changed: false,
            flash_time: None,
            random_cuts: None,
            protection: ModelledProtection::default(),
        }
    }

    /// Power on (or reset): restores power if it was cut, runs the engine's bootloader
    /// side, then starts the application model (or recovery). RAM state (an upload in
    /// progress) is lost, as on the real part.
    pub fn reset(&mut self) -> &Booted {
        self.flash.power_cycle();
        self.boots += 1;
        let spent_before = self.flash.elapsed_us();
        if let Some(r) = self.random_cuts.as_mut() {
            let op = self.flash.op_count() + r.next();
            self.flash.arm_cut(CutPoint::new(op, CutPhase::Torn));
        }
        let before = self.flash.op_count();
        let mut buf = [0u8; 4096];
        // A bank-swap flip asks for a reset: the chip resets and the bootloader runs again.
        let mut decision = Ok(BootDecision::Reset);
        for _ in 0..MAX_RESETS {
            let check = McubootCheck { keys: &self.keys };
            decision = BootLoader::with_bank_swap(
                &mut self.flash,
                self.layout,
                check,
                brickless_boot::NoPlatform,
                &mut buf,
            )
            .and_then(|mut b| b.boot());
            if decision != Ok(BootDecision::Reset) {
                break;
            }
            self.flash.reset();
        }
        self.booted = match decision {
            _ if !self.flash.is_powered() => Booted::PowerLost,
            Ok(BootDecision::Boot(t)) => {
                let mut confirmed_now = false;
                if t.trial && self.self_confirm == SelfConfirm::Always {
                    let mut u = Updater::new(
                        &mut self.flash,
                        self.layout,
                        McubootCheck { keys: &self.keys },
                    );
                    confirmed_now = u.confirm().is_ok();
                }
                if !self.flash.is_powered() {
                    Booted::PowerLost
                } else {
                    Booted::App {
                        image: t.image,
                        trial: t.trial && !confirmed_now,
                        event: t.event,
                        confirmed_now,
                    }
                }
            }
            Ok(BootDecision::Recovery(_)) => Booted::Recovery,
            Ok(BootDecision::Reset) => Booted::Failed(format!(
                "the bootloader asked for {MAX_RESETS} resets in a row"
            )),
            Err(e) => Booted::Failed(e.to_string()),
        };
        let mode = match self.booted {
            Booted::App { .. } => Mode::Application,
            _ => Mode::Recovery,
        };
        self.server = Server::new(config(mode));
        self.changed |= self.flash.op_count() != before;
        // The boot's flash work (an install, a revert) delays the device's first answers.
        let spent = self.flash.elapsed_us().saturating_sub(spent_before);
        if let Some(t) = self.flash_time.as_mut() {
            let now = Instant::now();
            let start = t.busy_until.map_or(now, |b| b.max(now));
            t.busy_until = Some(start + Duration::from_micros(spent));
        }
        &self.booted
    }

    /// What the last reset booted.
    pub fn booted(&self) -> &Booted {
        &self.booted
    }

    /// Resets so far.
    pub fn boots(&self) -> u64 {
        self.boots
    }

    /// Answers one SMP packet into `response`. `None` when there is nothing to answer, or
    /// power is off (a cut fired: the device is dead until [`reset`](Self::reset)).
    /// An OS reset request is answered here; the caller sends the answer, then resets.
    pub fn handle(&mut self, packet: &[u8], response: &mut [u8]) -> Option<Outcome> {
        if !self.flash.is_powered() {
            return None;
        }
        if let Some(out) = self.sim_command(packet, response) {
            return Some(out);
        }
        let before = self.flash.op_count();
        let mut u = Updater::new(
            &mut self.flash,
            self.layout,
            McubootCheck { keys: &self.keys },
        );
        let out = self
            .server
            .handle_with(&mut u, &mut self.protection, packet, response);
        self.changed |= self.flash.op_count() != before;
        // A request cut by a power loss gets no answer.
        out.filter(|_| self.flash.is_powered())
    }

    /// Charges flash work its modelled time (the part's typical erase and program times):
    /// [`handle_at`](Self::handle_at) then says when each answer may go out.
    pub fn set_flash_time(&mut self, on: bool) {
        let ram = upload_ram(self.flash.part());
        self.flash_time = on.then(|| FlashTime {
            ram,
            ..FlashTime::default()
        });
    }

    /// Like [`handle`](Self::handle) for a request that arrived at `now`; also returns when
    /// the answer may leave (after the flash work it waits for, when flash time is modelled).
    pub fn handle_at(
        &mut self,
        packet: &[u8],
        response: &mut [u8],
        now: Instant,
    ) -> Option<(Outcome, Instant)> {
        let spent_before = self.flash.elapsed_us();
        let out = self.handle(packet, response)?;
        let spent = self.flash.elapsed_us().saturating_sub(spent_before);
        use brickless_smp::header::{group, image};
        // A chunk of an upload still going on (the last one waits for all flash work).
        let uploading = self
            .server
            .upload_progress()
            .is_some_and(|(next, len)| next < len)
            && brickless_smp::Header::parse(packet)
                .is_ok_and(|h| h.group == group::IMAGE && h.command == image::UPLOAD);
        let Some(t) = self.flash_time.as_mut() else {
            return Some((out, now));
        };
        while t.pending.front().is_some_and(|(e, _)| *e <= now) {
            t.pending.pop_front();
        }
        if spent > 0 {
            let start = t.busy_until.map_or(now, |b| b.max(now));
            let end = start + Duration::from_micros(spent);
            t.busy_until = Some(end);
            t.pending.push_back((end, packet.len()));
        }
        let ready = if uploading {
            // Answered once the chunks still waiting (this one included) fit the RAM: the
            // newest that do not are those whose flash work must end first.
            let mut held = 0;
            let mut ready = now;
            for (end, bytes) in t.pending.iter().rev() {
                held += bytes;
                if held > t.ram {
                    ready = *end;
                    break;
                }
            }
            ready
        } else {
            t.busy_until.map_or(now, |b| b.max(now))
        };
        Some((out, ready.max(now)))
    }

    /// Answers [`SIM_CUT_POWER`]: arms the cut and answers `{}`.
    fn sim_command(&mut self, packet: &[u8], response: &mut [u8]) -> Option<Outcome> {
        use brickless_smp::header::{group, Op};
        let h = brickless_smp::Header::parse(packet).ok()?;
        if h.group != group::BRICKLESS || h.command != SIM_CUT_POWER || h.op != Op::Write {
            return None;
        }
        let body = packet.get(brickless_smp::HEADER_LEN..)?;
        let mut after = 0u64;
        let mut d = minicbor::Decoder::new(body);
        if let Ok(Some(n)) = d.map() {
            for _ in 0..n {
                match (d.str(), d.u64()) {
                    (Ok("after_ops"), Ok(v)) => after = v,
                    _ => break,
                }
            }
        }
        self.cut_after_ops(after);
        let rsp = brickless_smp::Header {
            op: Op::WriteRsp,
            len: 1,
            ..h
        };
        let out = response.get_mut(..brickless_smp::HEADER_LEN + 1)?;
        out[..brickless_smp::HEADER_LEN].copy_from_slice(&rsp.to_bytes());
        out[brickless_smp::HEADER_LEN] = 0xa0;
        Some(Outcome {
            len: brickless_smp::HEADER_LEN + 1,
            reset: false,
        })
    }

    /// Cuts power at a random flash operation within the next `span` after every power-up
    /// (the first from the next reset), reproducibly from `seed`.
    pub fn set_random_cuts(&mut self, span: u64, seed: u64) {
        self.random_cuts = Some(RandomCuts {
            span,
            state: seed | 1,
        });
    }

    /// Modelled busy time of all flash work so far (the part's typical figures), in µs.
    pub fn flash_busy_us(&self) -> u64 {
        self.flash.elapsed_us()
    }

    /// Whether power is on (off after a cut fired, until the next reset).
    pub fn is_powered(&self) -> bool {
        self.flash.is_powered()
    }

    /// Cuts power `ops_from_now` flash operations from now (0: the next one), inside that
    /// operation (a torn write or a partly erased sector).
    pub fn cut_after_ops(&mut self, ops_from_now: u64) {
        let op = self.flash.op_count() + ops_from_now;
        self.flash.arm_cut(CutPoint::new(op, CutPhase::Torn));
    }

    /// Cuts power now, between operations.
    pub fn cut_now(&mut self) {
        self.flash.cut_power();
    }

    /// Sets whether the application confirms a trial by itself at its next boot.
    pub fn set_self_confirm(&mut self, s: SelfConfirm) {
        self.self_confirm = s;
    }

    /// The flash (for persistence and inspection).
    pub fn flash(&self) -> &SimFlash {
        &self.flash
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether the flash changed since the last call (for persistence).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

fn config(mode: Mode) -> ServerConfig {
    ServerConfig {
        buf_size: BUF_SIZE,
        buf_count: 4,
        mode,
    }
}
