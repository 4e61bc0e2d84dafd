//! Byte-exact AN3155 frames against a scripted device (the examples of the reference sheet).

use std::collections::VecDeque;

use brickless_rom::an3155::{Config, Error, SerialLink, Usart};
use brickless_rom::{Erase, RomTarget};

/// A device that expects exact host bytes and answers with scripted bytes.
struct Script {
    steps: VecDeque<(Vec<u8>, Vec<u8>)>,
    pending_in: Vec<u8>,
    outbox: VecDeque<u8>,
}

#[derive(Debug)]
struct Unexpected;

impl SerialLink for Script {
    type Error = Unexpected;

    fn write_all(&mut self, data: &[u8]) -> Result<(), Unexpected> {
        self.pending_in.extend_from_slice(data);
        while let Some((expect, _)) = self.steps.front() {
            if self.pending_in.len() < expect.len() {
                break;
            }
            let got: Vec<u8> = self.pending_in.drain(..expect.len()).collect();
            assert_eq!(&got, expect, "host sent the wrong bytes");
            let (_, reply) = self.steps.pop_front().unwrap();
            self.outbox.extend(reply);
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], _timeout_ms: u32) -> Result<usize, Unexpected> {
        let mut n = 0;
        while n < buf.len() {
            match self.outbox.pop_front() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }

    fn discard_input(&mut self) -> Result<(), Unexpected> {
        Ok(())
    }

    fn delay_ms(&mut self, _ms: u32) {}
}

const ACK: u8 = 0x79;

fn connect_steps(commands: &[u8], pid: [u8; 2]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut get = vec![ACK, commands.len() as u8, 0x31];
    get.extend_from_slice(commands);
    get.push(ACK);
    vec![
        (vec![0x7F], vec![ACK]),
        (vec![0x00, 0xFF], get),
        (vec![0x01, 0xFE], vec![ACK, 0x31, 0, 0, ACK]),
        (vec![0x02, 0xFD], vec![ACK, 1, pid[0], pid[1], ACK]),
    ]
}

fn host(commands: &[u8], pid: [u8; 2], more: &[(&[u8], &[u8])]) -> Usart<Script> {
    let mut steps = connect_steps(commands, pid);
    steps.extend(more.iter().map(|(h, d)| (h.to_vec(), d.to_vec())));
    let script = Script {
        steps: steps.into(),
        pending_in: Vec::new(),
        outbox: VecDeque::new(),
    };
    Usart::connect(script, Config::default()).unwrap()
}

const EXTENDED: &[u8] = &[
    0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x44, 0x63, 0x73, 0x82, 0x92,
];
const LEGACY: &[u8] = &[
    0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x43, 0x63, 0x73, 0x82, 0x92,
];

#[test]
fn extended_erase_of_pages_0_and_1_matches_the_reference_example() {
    let mut h = host(
        EXTENDED,
        [0x04, 0x13],
        &[
            (&[0x44, 0xBB], &[ACK]),
            (&[0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00], &[ACK]),
        ],
    );
    assert_eq!(h.info().pid, 0x413);
    h.erase(Erase::Pages(&[0, 1])).unwrap();
    assert!(h.into_link().steps.is_empty());
}

#[test]
fn legacy_erase_and_special_erases() {
    let mut h = host(
        LEGACY,
        [0x04, 0x13],
        &[
            (&[0x43, 0xBC], &[ACK]),
            (&[0x01, 0x00, 0x01, 0x00], &[ACK]),
            (&[0x43, 0xBC], &[ACK]),
            (&[0xFF, 0x00], &[ACK]),
        ],
    );
    h.erase(Erase::Pages(&[0, 1])).unwrap();
    h.erase(Erase::Mass).unwrap();
    let mut h = host(
        EXTENDED,
        [0x04, 0x50],
        &[
            (&[0x44, 0xBB], &[ACK]),
            (&[0xFF, 0xFD, 0x02], &[ACK]),
            (&[0x44, 0xBB], &[ACK]),
            (&[0xFF, 0xFF, 0x00], &[ACK]),
        ],
    );
    h.erase(Erase::Bank(1)).unwrap();
    h.erase(Erase::Mass).unwrap();
    assert!(h.into_link().steps.is_empty());
}

#[test]
fn write_and_read_frames() {
    // Write 5 bytes at 0x08000000: padded to 8 with 0xFF, N = 7, XOR over N and data.
    let data = [1u8, 2, 3, 4, 5];
    let mut frame = vec![7u8, 1, 2, 3, 4, 5, 0xFF, 0xFF, 0xFF];
    frame.push(frame.iter().fold(0, |a, b| a ^ b));
    let mut h = host(
        EXTENDED,
        [0x04, 0x13],
        &[
            (&[0x31, 0xCE], &[ACK]),
            (&[0x08, 0x00, 0x00, 0x00, 0x08], &[ACK]),
            (&frame, &[ACK]),
            (&[0x11, 0xEE], &[ACK]),
            (&[0x1F, 0xFF, 0x7A, 0x22, 0xB8], &[ACK]),
            (&[0x01, 0xFE], &[ACK, 0x00, 0x04]),
        ],
    );
    h.write_memory(0x0800_0000, &data).unwrap();
    let mut size = [0u8; 2];
    h.read_memory(0x1FFF_7A22, &mut size).unwrap();
    assert_eq!(u16::from_le_bytes(size), 1024);
    assert!(h.into_link().steps.is_empty());
}

#[test]
fn unsupported_and_bad_arguments_send_nothing() {
    let mut h = host(EXTENDED, [0x04, 0x13], &[]);
    // No 0xA1 listed: no checksum, and no bytes on the wire.
    assert!(matches!(h.checksum(0x0800_0000, 64), Ok(None)));
    assert!(matches!(
        h.write_memory(0x0800_0002, &[0; 4]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        h.read_memory(0x0800_0000, &mut [0u8; 257]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        h.write_protect(&[300]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(h.into_link().steps.is_empty());
}
