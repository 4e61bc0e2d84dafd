//! Outside data never panics the DfuSe side: random and mutated `.dfu` files, layout strings,
//! and a USB device that answers with random bytes.

use brickless_rom::dfu_file::{DfuContents, DfuFile, DfuSeBuilder, TargetSpec};
use brickless_rom::dfuse::{DfuTransport, DfuseHost, MemoryLayout, UsbError};
use brickless_test_support::{fix_dfu_crc, XorShift64};
use embedded_hal::delay::DelayNs;

#[test]
fn mutated_dfu_files_parse_or_fail_cleanly() {
    let good = DfuSeBuilder {
        targets: vec![
            TargetSpec {
                alt_setting: 0,
                name: Some("Internal Flash".into()),
                elements: vec![(0x0800_0000, vec![1; 100]), (0x0801_0000, vec![2; 7])],
            },
            TargetSpec {
                alt_setting: 1,
                name: None,
                elements: vec![(0x1FFF_C000, vec![3; 16])],
            },
        ],
        ..DfuSeBuilder::default()
    }
    .build()
    .unwrap();
    let mut rng = XorShift64::new(0x1234_5678_9ABC_DEF1);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut file = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(file.len());
            file[i] = rng.next_u64() as u8;
        }
        if rng.below(4) == 0 {
            let cut = rng.below(file.len());
            file.truncate(cut);
        }
        fix_dfu_crc(&mut file);
        if let Ok(parsed) = DfuFile::parse(&file) {
            accepted += 1;
            if let DfuContents::DfuSe(image) = parsed.contents {
                let mut total = 0usize;
                for t in image.targets() {
                    for e in t.elements() {
                        total += e.data.len();
                        assert!(u64::from(e.address) + e.data.len() as u64 <= 1 << 32);
                    }
                }
                assert!(total <= file.len());
            }
        }
    }
    // Mutations inside element data keep the file valid: the parser is not rejecting all.
    assert!(accepted > 0);
}

#[test]
fn random_layout_strings_never_panic() {
    let alphabet = b"@/0x*,KMBgae 0123456789ABCDEFabcdef";
    let mut rng = XorShift64::new(42);
    for _ in 0..50_000 {
        let len = rng.below(60);
        let s: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())] as char)
            .collect();
        if let Ok(l) = MemoryLayout::parse(&s) {
            let _ = l.total_size();
            let _ = l.page_at(rng.next_u64() as u32);
        }
    }
}

/// A device that answers every request with random bytes, stalls or errors.
struct RandomDevice(XorShift64);

impl DfuTransport for RandomDevice {
    fn control_out(&mut self, _: u8, _: u16, _: u16, _: &[u8]) -> Result<(), UsbError> {
        match self.0.below(8) {
            0 => Err(UsbError::Stall),
            1 => Err(UsbError::Timeout),
            _ => Ok(()),
        }
    }
    fn control_in(&mut self, _: u8, _: u16, _: u16, buf: &mut [u8]) -> Result<usize, UsbError> {
        if self.0.below(10) == 0 {
            return Err(UsbError::Stall);
        }
        let n = self.0.below(buf.len() + 1);
        for b in &mut buf[..n] {
            // Mostly plausible states and statuses, sometimes anything.
            *b = if self.0.below(2) == 0 {
                self.0.below(12) as u8
            } else {
                self.0.next_u64() as u8
            };
        }
        Ok(n)
    }
}

struct NoDelay;
impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

#[test]
fn a_device_answering_garbage_never_makes_a_write_succeed_silently() {
    let layout_text = "@Internal Flash  /0x08000000/8*1Kg";
    let layout = MemoryLayout::parse(layout_text).unwrap();
    let data = vec![0x5Au8; 3000];
    let mut successes = 0;
    for seed in 1..300u64 {
        let mut host = DfuseHost::new(RandomDevice(XorShift64::new(seed)), NoDelay, 0, 1024);
        // Random devices cannot hold data: any Ok must have passed a read-back that matched,
        // which random uploads essentially never produce.
        if host
            .program(&layout, 0x0800_0000, &data, &mut |_, _, _| {})
            .is_ok()
        {
            successes += 1;
        }
    }
    assert_eq!(successes, 0);
}
