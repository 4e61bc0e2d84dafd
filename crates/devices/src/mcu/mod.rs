//! The virtual STM32 running brickless: the faithful flash model, the real engine's
//! bootloader side at every reset, then the booted image's application model serving SMP
//! (as Zephyr's `smp_svr` sample does), or the bootloader's recovery SMP when nothing
//! verifies. Power can be cut at the Nth flash operation, at random, or on command; the
//! device then restarts from what the flash holds.
//!
//! [`VirtualMcu`] is the device without a link (tests and `brickless demo` drive it in
//! process); [`serve`] puts it on UDP and a pty.

pub mod serve;

use brickless_boot::mcuboot::McubootCheck;
use brickless_boot::{BootDecision, BootEvent, BootLoader, ImageInfo, Layout, Updater};
use brickless_flash_model::{CutPhase, CutPoint, SimFlash};
use brickless_image::PublicKey;
use brickless_smp::{Mode, Outcome, Server, ServerConfig};

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
}

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
        }
    }

    /// Power on (or reset): restores power if it was cut, runs the engine's bootloader
    /// side, then starts the application model (or recovery). RAM state (an upload in
    /// progress) is lost, as on the real part.
    pub fn reset(&mut self) -> &Booted {
        self.flash.power_cycle();
        self.boots += 1;
        let before = self.flash.op_count();
        let mut buf = [0u8; 4096];
        let check = McubootCheck { keys: &self.keys };
        let decision = BootLoader::new(&mut self.flash, self.layout, check, &mut buf)
            .and_then(|mut b| b.boot());
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
            Err(e) => Booted::Failed(e.to_string()),
        };
        let mode = match self.booted {
            Booted::App { .. } => Mode::Application,
            _ => Mode::Recovery,
        };
        self.server = Server::new(config(mode));
        self.changed |= self.flash.op_count() != before;
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
        let before = self.flash.op_count();
        let mut u = Updater::new(
            &mut self.flash,
            self.layout,
            McubootCheck { keys: &self.keys },
        );
        let out = self.server.handle(&mut u, packet, response);
        self.changed |= self.flash.op_count() != before;
        // A request cut by a power loss gets no answer.
        out.filter(|_| self.flash.is_powered())
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
