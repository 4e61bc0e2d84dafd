//! The 8-byte SMP header, the group and command numbers brickless serves, and the error
//! codes of both SMP versions.

/// Bytes in an SMP header.
pub const HEADER_LEN: usize = 8;

/// The operation byte's low three bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read request.
    Read = 0,
    /// Response to a read.
    ReadRsp = 1,
    /// Write request.
    Write = 2,
    /// Response to a write.
    WriteRsp = 3,
}

impl Op {
    fn from_bits(bits: u8) -> Option<Op> {
        match bits {
            0 => Some(Op::Read),
            1 => Some(Op::ReadRsp),
            2 => Some(Op::Write),
            3 => Some(Op::WriteRsp),
            _ => None,
        }
    }

    /// The response operation to this request (`None` for a response).
    pub fn response(self) -> Option<Op> {
        match self {
            Op::Read => Some(Op::ReadRsp),
            Op::Write => Some(Op::WriteRsp),
            Op::ReadRsp | Op::WriteRsp => None,
        }
    }
}

/// SMP protocol version (header bits 4:3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// SMP v1: errors are `{"rc": int}`.
    V1 = 0,
    /// SMP v2: group errors are `{"err": {"group", "rc"}}`.
    V2 = 1,
}

/// A parsed SMP header (all fields big-endian on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Operation.
    pub op: Op,
    /// Protocol version.
    pub version: Version,
    /// Flags byte (0 in every known use).
    pub flags: u8,
    /// Length of the CBOR body that follows the header.
    pub len: u16,
    /// Management group ([`group`]).
    pub group: u16,
    /// Sequence number; a response echoes its request's.
    pub seq: u8,
    /// Command within the group.
    pub command: u8,
}

/// Why bytes are not an SMP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Short,
    /// Version bits 0b10 or 0b11 (reserved), or reserved bits 7:5 set.
    Reserved,
    /// Operation 4..=7 (undefined).
    BadOp,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            HeaderError::Short => "an SMP packet is shorter than its 8-byte header",
            HeaderError::Reserved => {
                "reserved bits or a reserved version are set in the SMP header"
            }
            HeaderError::BadOp => "the SMP header's operation is not 0-3",
        })
    }
}

impl core::error::Error for HeaderError {}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(HeaderError::Short)?;
        if b[0] & 0xE0 != 0 {
            return Err(HeaderError::Reserved);
        }
        let version = match (b[0] >> 3) & 0b11 {
            0 => Version::V1,
            1 => Version::V2,
            _ => return Err(HeaderError::Reserved),
        };
        Ok(Header {
            op: Op::from_bits(b[0] & 0b111).ok_or(HeaderError::BadOp)?,
            version,
            flags: b[1],
            len: u16::from_be_bytes([b[2], b[3]]),
            group: u16::from_be_bytes([b[4], b[5]]),
            seq: b[6],
            command: b[7],
        })
    }

    /// The wire form.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let len = self.len.to_be_bytes();
        let group = self.group.to_be_bytes();
        [
            ((self.version as u8) << 3) | self.op as u8,
            self.flags,
            len[0],
            len[1],
            group[0],
            group[1],
            self.seq,
            self.command,
        ]
    }
}

/// Management groups.
pub mod group {
    /// OS management: echo, reset, parameters, bootloader info.
    pub const OS: u16 = 0;
    /// Image management: state, upload, erase, slot info.
    pub const IMAGE: u16 = 1;
    /// brickless's own group (the first per-user number): fast-path negotiation and resume.
    pub const BRICKLESS: u16 = 64;
}

/// OS group commands.
pub mod os {
    /// Echo `{"d"}` back as `{"r"}`.
    pub const ECHO: u8 = 0;
    /// Reset after the response.
    pub const RESET: u8 = 5;
    /// `{"buf_size", "buf_count"}`: the largest request the server takes.
    pub const MCUMGR_PARAMS: u8 = 6;
    /// Bootloader name and mode.
    pub const BOOTLOADER_INFO: u8 = 8;
}

/// brickless group commands (group [`group::BRICKLESS`]): what the fast path needs, invisible
/// to stock clients (a stock server answers `MGMT_ERR_ENOTSUP`, and the client falls back).
pub mod brickless {
    /// Read: `{"raw": bool, "resume": bool, "window": uint, "block": uint}`: the raw framing,
    /// resume by content, requests the device buffers, the resume block size.
    pub const CAPS: u8 = 0;
    /// Write `{"len", "sha", "digests"}` (8 bytes of SHA-256 per block of the upload):
    /// answers `{"off"}`, where an interrupted upload of the same image carries on, judged
    /// from what the staging slot holds (it survives a power cut; RAM does not).
    pub const RESUME: u8 = 1;
    /// Read: `{"rdp": 0|1|2, "wrp": "none"|"partial"|"full"}`, the read-out protection
    /// level and the write protection of the bootloader's own sectors. Write `{"wrp": true}`:
    /// write-protects them (option bytes), answers the new state and `"reset": true` when it
    /// takes effect only after the reset that follows the answer. Never done unasked; a
    /// device that cannot tell answers ENOTSUP.
    pub const PROTECT: u8 = 2;
    /// Bytes per resume block.
    pub const BLOCK: u32 = 4096;
    /// Bytes of each block's digest (a truncated SHA-256).
    pub const DIGEST: usize = 8;
}

/// Image group commands.
pub mod image {
    /// Read (OP 0) or set test/confirm (OP 2) image states.
    pub const STATE: u8 = 0;
    /// Upload a chunk.
    pub const UPLOAD: u8 = 1;
    /// Erase the staging slot.
    pub const ERASE: u8 = 5;
    /// Slot sizes.
    pub const SLOT_INFO: u8 = 6;
}

/// SMP-level error codes (`MGMT_ERR_*`), sent as `{"rc": N}` in either version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MgmtErr {
    /// Unknown error.
    Unknown = 1,
    /// Out of memory (the request does not fit the server's buffer).
    NoMem = 2,
    /// Invalid argument: malformed CBOR, a missing or mistyped field.
    Inval = 3,
    /// No such entry.
    NoEnt = 5,
    /// The device's state does not allow this now.
    BadState = 6,
    /// The response would not fit.
    MsgSize = 7,
    /// Command or group not supported.
    NotSup = 8,
    /// Corrupt data.
    Corrupt = 9,
    /// Busy.
    Busy = 10,
}

/// Image group error codes of SMP v2 (`IMG_MGMT_ERR_*`), sent as
/// `{"err": {"group": 1, "rc": N}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImgErr {
    /// Unknown error.
    Unknown = 1,
    /// No slot to upload into: during a trial it holds the image a revert needs.
    NoFreeSlot = 9,
    /// Reading flash failed.
    FlashReadFailed = 11,
    /// Programming flash failed.
    FlashWriteFailed = 12,
    /// Erasing flash failed.
    FlashEraseFailed = 13,
    /// No such slot.
    InvalidSlot = 14,
    /// The offset is not what the server expects.
    InvalidOffset = 20,
    /// The length is missing or does not fit the slot.
    InvalidLength = 21,
    /// The image's header is not an MCUboot header.
    InvalidImageHeader = 22,
    /// The hash names no image on the device.
    HashNotFound = 8,
    /// The running image is newer than the one offered.
    CurrentVersionIsNewer = 27,
    /// An update is already pending.
    ImageAlreadyPending = 28,
    /// The image is larger than the slot.
    InvalidImageTooLarge = 30,
    /// Setting the running image for test is refused.
    SettingTestToActiveDenied = 33,
}
