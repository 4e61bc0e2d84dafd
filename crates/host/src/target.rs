//! Where a device is: one target per connection, written `serial:PATH[@BAUD]`,
//! `udp:HOST[:PORT]` or `tcp:HOST:PORT`, on the command line or one per line in a file.
use std::fmt;
use std::path::Path;

use crate::{Error, ErrorKind};

/// mcumgr's UDP port, used when a UDP target names none.
pub const SMP_UDP_PORT: u16 = 1337;

/// One device's connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A serial port (a USB-UART, a pty such as `brickless sim --link`).
    Serial {
        /// The port's path.
        path: String,
        /// Baud rate.
        baud: u32,
    },
    /// SMP over UDP, `HOST:PORT`.
    Udp(String),
    /// A raw byte stream over TCP (`HOST:PORT`: ser2net, `brickless sim --tcp`).
    Tcp(String),
}

impl Target {
    /// Parses `serial:PATH[@BAUD]`, `udp:HOST[:PORT]` or `tcp:HOST:PORT` (also with a space
    /// instead of the colon, and `port` for `serial`); `default_baud` is the rate of a
    /// serial target that names none.
    pub fn parse(text: &str, default_baud: u32) -> Result<Target, Error> {
        let t = text.trim();
        let (kind, rest) = t
            .split_once(|c: char| c == ':' || c.is_whitespace())
            .map(|(k, r)| (k, r.trim()))
            .ok_or_else(|| bad(t))?;
        if rest.is_empty() {
            return Err(bad(t));
        }
        match kind {
            "serial" | "port" => {
                let (path, baud) = match rest.rsplit_once('@') {
                    Some((p, b)) => (
                        p,
                        b.parse::<u32>().ok().filter(|b| *b > 0).ok_or_else(|| {
                            Error::invalid(format!("`{b}` in `{t}` is not a baud rate"))
                        })?,
                    ),
                    None => (rest, default_baud),
                };
                Ok(Target::Serial {
                    path: path.into(),
                    baud,
                })
            }
            "udp" => Ok(Target::Udp(with_port(rest, SMP_UDP_PORT))),
            "tcp" => {
                if !has_port(rest) {
                    return Err(Error::invalid(format!(
                        "`{t}`: a TCP target needs HOST:PORT"
                    )));
                }
                Ok(Target::Tcp(rest.into()))
            }
            _ => Err(bad(t)),
        }
    }

    /// Reads a list of targets, one per line (`#` starts a comment, blank lines skipped).
    pub fn read_list(path: &Path, default_baud: u32) -> Result<Vec<Target>, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::File,
                format!("cannot read the target list {}: {e}", path.display()),
            )
        })?;
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            out.push(
                Target::parse(line, default_baud)
                    .map_err(|e| e.context(format!("{} line {}", path.display(), n + 1)))?,
            );
        }
        if out.is_empty() {
            return Err(Error::invalid(format!(
                "the target list {} names no target",
                path.display()
            )));
        }
        Ok(out)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Serial { path, .. } => write!(f, "serial:{path}"),
            Target::Udp(a) => write!(f, "udp:{a}"),
            Target::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

fn bad(t: &str) -> Error {
    Error::invalid(format!("`{t}` is not a target"))
        .with_help("write serial:PATH[@BAUD], udp:HOST[:PORT] or tcp:HOST:PORT")
}

fn has_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

/// `addr` with `port` appended when it has none.
pub fn with_port(addr: &str, port: u16) -> String {
    if has_port(addr) {
        addr.to_string()
    } else {
        format!("{addr}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_in_both_spellings() {
        assert_eq!(
            Target::parse("serial:/dev/ttyUSB0@57600", 115200).unwrap(),
            Target::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 57600
            }
        );
        assert_eq!(
            Target::parse("port ./ttySMP", 9600).unwrap(),
            Target::Serial {
                path: "./ttySMP".into(),
                baud: 9600
            }
        );
        assert_eq!(
            Target::parse("udp:10.0.0.2", 0).unwrap(),
            Target::Udp("10.0.0.2:1337".into())
        );
        assert_eq!(
            Target::parse("tcp 127.0.0.1:4000", 0).unwrap(),
            Target::Tcp("127.0.0.1:4000".into())
        );
        for bad in [
            "",
            "udp:",
            "tcp:127.0.0.1",
            "usb:1",
            "serial:/x@0",
            "serial:/x@fast",
            "/dev/ttyUSB0",
        ] {
            let e = Target::parse(bad, 115200).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn a_list_names_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("targets.txt");
        std::fs::write(
            &p,
            "# line\nudp:127.0.0.1:1400\n\ntcp 127.0.0.1:4000 # rom\n",
        )
        .unwrap();
        let list = Target::read_list(&p, 115200).unwrap();
        assert_eq!(list.len(), 2);
        std::fs::write(&p, "udp:127.0.0.1\nnonsense\n").unwrap();
        let e = Target::read_list(&p, 115200).unwrap_err();
        assert!(e.message.contains("line 2"), "{e}");
        std::fs::write(&p, "# nothing\n").unwrap();
        assert!(Target::read_list(&p, 115200).is_err());
    }
}
