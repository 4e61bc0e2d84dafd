//! Property test: any sequence of operations on the model reads back what a plain byte-array
//! reference with the family's rules predicts.

use brickless_flash::{part, Geometry, RewriteRule};
use brickless_flash_model::{SimFlash, SimFlashError};
use proptest::prelude::*;

/// The reference: bytes plus a "programmed since erase" and a "poisoned" flag per unit.
struct Reference {
    g: Geometry,
    data: Vec<u8>,
    programmed: Vec<bool>,
    poisoned: Vec<bool>,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Refused,
}

impl Reference {
    fn new(g: Geometry) -> Self {
        let span = g.span() as usize;
        let units = span / g.write_unit as usize;
        Reference {
            g,
            data: vec![g.erased; span],
            programmed: vec![false; units],
            poisoned: vec![false; units],
        }
    }

    fn program(&mut self, addr: u32, bytes: &[u8]) -> Outcome {
        let unit = self.g.write_unit as usize;
        let off = (addr - self.g.base()) as usize;
        for (i, new) in bytes.chunks(unit).enumerate() {
            let u = off / unit + i;
            let cur = &mut self.data[off + i * unit..off + (i + 1) * unit];
            let zero = new.iter().all(|b| *b == 0);
            match self.g.rewrite {
                RewriteRule::BitwiseAnd => cur.iter_mut().zip(new).for_each(|(c, n)| *c &= n),
                RewriteRule::OnceExceptAllZeros => {
                    if self.programmed[u] && !zero {
                        return Outcome::Refused;
                    }
                    cur.copy_from_slice(new);
                }
                RewriteRule::OnceNoHwCheck => {
                    if self.programmed[u] {
                        cur.iter_mut().zip(new).for_each(|(c, n)| *c &= n);
                        self.poisoned[u] = true;
                    } else {
                        cur.copy_from_slice(new);
                    }
                }
                RewriteRule::NotZeroErr => {
                    if cur.iter().any(|b| *b != 0) {
                        return Outcome::Refused;
                    }
                    cur.copy_from_slice(new);
                }
            }
            self.programmed[u] = true;
        }
        Outcome::Ok
    }

    fn erase(&mut self, from: u32, to: u32) {
        let unit = self.g.write_unit as usize;
        let (a, b) = (
            (from - self.g.base()) as usize,
            (to - self.g.base()) as usize,
        );
        self.data[a..b].fill(self.g.erased);
        for u in a / unit..b / unit {
            self.programmed[u] = false;
            self.poisoned[u] = false;
        }
    }

    /// The first poisoned unit in a range, as the model reports it.
    fn read(&self, addr: u32, len: usize) -> Result<Vec<u8>, u32> {
        let unit = self.g.write_unit as usize;
        let off = (addr - self.g.base()) as usize;
        for u in off / unit..(off + len).div_ceil(unit) {
            if self.poisoned[u] {
                return Err(self.g.base() + (u * unit) as u32);
            }
        }
        Ok(self.data[off..off + len].to_vec())
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Program `units` units starting at unit `at` (in a window), with data of `kind`.
    Program {
        at: u32,
        units: u32,
        kind: u8,
        salt: u8,
    },
    /// Erase `count` sectors starting at window sector `sector`.
    Erase { sector: u32, count: u32 },
    /// Read `len` bytes at byte `at` of the window.
    Read { at: u32, len: u32 },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        5 => (0u32..512, 1u32..12, 0u8..4, any::<u8>()).prop_map(|(at, units, kind, salt)| Op::Program { at, units, kind, salt }),
        1 => (0u32..4, 1u32..3).prop_map(|(sector, count)| Op::Erase { sector, count }),
        3 => (0u32..8192, 1u32..600).prop_map(|(at, len)| Op::Read { at, len }),
    ];
    prop::collection::vec(op, 1..60)
}

/// Checks one part: ops act on a window of the first sectors of bank 1 and of the last bank.
fn check(name: &str, ops: &[Op]) -> Result<(), TestCaseError> {
    let p = part(name).unwrap();
    let g = p.geometry;
    let mut model = SimFlash::with_seed(p, 1);
    let mut reference = Reference::new(g);
    let sectors: Vec<_> = g.sectors().collect();
    let last_bank = g.banks.len() as u8 - 1;
    let windows = [
        sectors
            .iter()
            .filter(|s| s.bank == 0)
            .take(4)
            .copied()
            .collect::<Vec<_>>(),
        sectors
            .iter()
            .filter(|s| s.bank == last_bank)
            .take(4)
            .copied()
            .collect::<Vec<_>>(),
    ];
    let unit = g.write_unit;
    for (i, op) in ops.iter().enumerate() {
        let w = &windows[i % 2];
        let start = w[0].addr;
        let end = w[w.len() - 1].end();
        match *op {
            Op::Program {
                at,
                units,
                kind,
                salt,
            } => {
                let addr = start + (at * unit) % (end - start);
                let len = (units * unit).min(end - addr) as usize;
                let data: Vec<u8> = match kind {
                    0 => vec![0; len],
                    1 => vec![g.erased; len],
                    _ => (0..len)
                        .map(|j| (j as u8).wrapping_mul(salt | 1) ^ salt)
                        .collect(),
                };
                let expect = reference.program(addr, &data);
                let got = model.program_abs(addr, &data);
                match expect {
                    Outcome::Ok => prop_assert_eq!(got, Ok(()), "{} program {:#x}", name, addr),
                    Outcome::Refused => prop_assert!(
                        matches!(got, Err(SimFlashError::Program { .. })),
                        "{} program {:#x}: {:?}",
                        name,
                        addr,
                        got
                    ),
                }
            }
            Op::Erase { sector, count } => {
                let first = (sector as usize).min(w.len() - 1);
                let last = (first + count as usize).min(w.len());
                let (from, to) = (w[first].addr, w[last - 1].end());
                reference.erase(from, to);
                prop_assert_eq!(model.erase_abs(from, to), Ok(()));
            }
            Op::Read { at, len } => {
                let addr = start + at % (end - start);
                let len = len.min(end - addr) as usize;
                let mut buf = vec![0u8; len];
                let got = model.read_abs(addr, &mut buf).map(|_| buf);
                let expect = reference
                    .read(addr, len)
                    .map_err(|addr| SimFlashError::Ecc { addr });
                prop_assert_eq!(got, expect, "{} read {:#x}+{}", name, addr, len);
            }
        }
    }
    // Finally the whole of both windows agrees.
    for w in &windows {
        let (a, b) = (w[0].addr, w[w.len() - 1].end());
        let mut buf = vec![0u8; (b - a) as usize];
        let got = model.read_abs(a, &mut buf).map(|_| buf);
        prop_assert_eq!(
            got,
            reference
                .read(a, (b - a) as usize)
                .map_err(|addr| SimFlashError::Ecc { addr })
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn h753_matches_the_reference(ops in ops()) { check("stm32h753zi", &ops)?; }
    #[test]
    fn h7a3_matches_the_reference(ops in ops()) { check("stm32h7a3zi", &ops)?; }
    #[test]
    fn l475_matches_the_reference(ops in ops()) { check("stm32l475vg", &ops)?; }
    #[test]
    fn u585_matches_the_reference(ops in ops()) { check("stm32u585ai", &ops)?; }
    #[test]
    fn g474_matches_the_reference(ops in ops()) { check("stm32g474re", &ops)?; }
    #[test]
    fn f407_matches_the_reference(ops in ops()) { check("stm32f407vg", &ops)?; }
    #[test]
    fn f429_matches_the_reference(ops in ops()) { check("stm32f429zi", &ops)?; }
    #[test]
    fn l073_matches_the_reference(ops in ops()) { check("stm32l073rz", &ops)?; }
    #[test]
    fn h743vg_matches_the_reference(ops in ops()) { check("stm32h743vg", &ops)?; }
}
