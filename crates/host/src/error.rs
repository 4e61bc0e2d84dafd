//! One error type for every job: a stable kind, a message naming what is wrong, a hint.
use std::fmt;

/// What kind of failure; the numbers are the C library's error codes and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(i32)]
pub enum ErrorKind {
    /// An argument is malformed or out of range (a version, a hash, an address, a target).
    InvalidArgument = 1,
    /// A file could not be read or written.
    File = 2,
    /// The file is not a valid MCUboot image (truncated, bad magic, hash mismatch).
    BadImage = 3,
    /// A key file could not be read or is not a supported key.
    BadKey = 4,
    /// The image does not verify with the keys given (unknown key, bad signature).
    Verification = 5,
    /// The port, socket or device could not be opened, or the link failed.
    Connection = 6,
    /// The device did not answer in time.
    Timeout = 7,
    /// The device refused the request.
    Refused = 8,
    /// The device answered something its protocol does not allow.
    Protocol = 9,
    /// The device holds or runs something other than what was sent (read-back, hash).
    Mismatch = 10,
    /// The caller cancelled the job.
    Cancelled = 11,
    /// This build or this device cannot do that.
    Unsupported = 12,
    /// A bug in brickless (a panic caught at a language boundary).
    Internal = 13,
}

impl ErrorKind {
    /// Every kind, in code order (the bindings build their tables from it).
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::InvalidArgument,
        ErrorKind::File,
        ErrorKind::BadImage,
        ErrorKind::BadKey,
        ErrorKind::Verification,
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::Refused,
        ErrorKind::Protocol,
        ErrorKind::Mismatch,
        ErrorKind::Cancelled,
        ErrorKind::Unsupported,
        ErrorKind::Internal,
    ];

    /// The kind's stable name (`bad_image`, `timeout`, …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::File => "file",
            ErrorKind::BadImage => "bad_image",
            ErrorKind::BadKey => "bad_key",
            ErrorKind::Verification => "verification",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Mismatch => "mismatch",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A failed job: its kind, a message that names what is wrong, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The kind.
    pub kind: ErrorKind,
    /// What went wrong, naming the file, device or value.
    pub message: String,
    /// What to do about it, when there is something to say.
    pub help: Option<&'static str>,
}

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            help: None,
        }
    }
    /// Adds a hint.
    pub fn with_help(mut self, help: &'static str) -> Self {
        self.help = Some(help);
        self
    }
    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// The job was cancelled.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }
    /// Prefixes the message with what was being done (`"device 3: …"`).
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<brickless_smp::client::ClientError> for Error {
    fn from(e: brickless_smp::client::ClientError) -> Self {
        use brickless_smp::client::ClientError as C;
        let kind = match &e {
            C::Io(_) => ErrorKind::Connection,
            C::Timeout { .. } => ErrorKind::Timeout,
            C::Device { .. } => ErrorKind::Refused,
            C::Malformed(_) => ErrorKind::Protocol,
            C::BadImage => ErrorKind::BadImage,
            C::Cancelled => ErrorKind::Cancelled,
            _ => ErrorKind::Protocol,
        };
        let help = match &e {
            C::Timeout { .. } => Some("is the device running and is this its address? (`brickless sim` prints where it serves)"),
            C::Device { rc: 9, v2: true, .. } => Some("confirm the running image (`brickless smp image confirm`) or reset to revert it, then upload"),
            C::Device { rc: 28, v2: true, .. } => Some("reset the device to install the pending image first"),
            C::Device { rc: 22, v2: true, .. } => Some("upload a signed MCUboot image (`brickless image sign`)"),
            _ => None,
        };
        let message = match &e {
            C::Io(io) => format!("the link failed: {io}"),
            other => other.to_string(),
        };
        Error {
            kind,
            message,
            help,
        }
    }
}

impl From<brickless_rom::target::ErrorKind> for ErrorKind {
    fn from(k: brickless_rom::target::ErrorKind) -> Self {
        use brickless_rom::target::ErrorKind as R;
        match k {
            R::Link => ErrorKind::Connection,
            R::Timeout | R::NoSync => ErrorKind::Timeout,
            R::Nack | R::ReadProtected => ErrorKind::Refused,
            R::Verify => ErrorKind::Mismatch,
            R::OutsideFlash | R::InvalidArgument => ErrorKind::InvalidArgument,
            R::Unsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_once_in_code_order() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as i32, i as i32 + 1, "{}", k.name());
        }
    }
}
