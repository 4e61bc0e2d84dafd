//! Host-side links that carry whole SMP packets (header and CBOR, opaque here): UDP, and the
//! serial console framing of [`crate::serial`] over any byte stream.

use crate::raw::{self, AnyDecoder, Framing};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// A link moving whole SMP packets to and from one device.
pub trait Transport: Send {
    /// Sends one SMP packet.
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// Receives one SMP packet, waiting at most `timeout`; `Err` of kind
    /// [`io::ErrorKind::TimedOut`] when none came.
    fn recv(&mut self, timeout: Duration) -> io::Result<Vec<u8>>;
    /// Largest SMP packet this link carries in one message (UDP: the MTU; serial: the
    /// device's reassembly size).
    fn mtu(&self) -> usize;
    /// Re-opens the link after a disconnect (serial port re-open; UDP no-op).
    fn reconnect(&mut self) -> io::Result<()>;
    /// Switches to brickless's raw framing ([`crate::raw`]) once the device said it takes
    /// it; `false` when this link has no such framing (UDP needs none).
    fn set_raw(&mut self, _on: bool) -> bool {
        false
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        (**self).send(packet)
    }
    fn recv(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        (**self).recv(timeout)
    }
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
    fn reconnect(&mut self) -> io::Result<()> {
        (**self).reconnect()
    }
    fn set_raw(&mut self, on: bool) -> bool {
        (**self).set_raw(on)
    }
}

/// The error for a packet longer than the link's MTU.
fn too_long(len: usize, mtu: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("SMP packet of {len} bytes exceeds the link MTU of {mtu}"),
    )
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no SMP packet before the timeout")
}

/// SMP over UDP: one packet per datagram, to one device.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    mtu: usize,
}

/// Largest UDP payload; receiving into this much never truncates a datagram.
const UDP_MAX: usize = 65_535;

impl UdpTransport {
    /// Binds an ephemeral local port and connects it to the device at `addr` (the first
    /// address that works). `mtu` is the largest packet [`send`](Transport::send) accepts.
    pub fn connect(addr: impl ToSocketAddrs, mtu: usize) -> io::Result<Self> {
        let mut last = None;
        for peer in addr.to_socket_addrs()? {
            let local: SocketAddr = if peer.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            match UdpSocket::bind(local).and_then(|s| s.connect(peer).map(|()| s)) {
                Ok(socket) => return Ok(Self { socket, mtu }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        }))
    }

    /// The device's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }
}

impl Transport for UdpTransport {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        if packet.len() > self.mtu {
            return Err(too_long(packet.len(), self.mtu));
        }
        let sent = self.socket.send(packet)?;
        if sent != packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "UDP datagram sent in part",
            ));
        }
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; UDP_MAX];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                // Unix reports an expired read timeout as WouldBlock, Windows as TimedOut.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timed_out())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn reconnect(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "serial link closed: its re-open failed",
    )
}

/// Largest packet body a [`SerialTransport`] reassembles.
pub const SERIAL_RECV_MAX: usize = 8192;
/// The [`SerialTransport`] MTU unless set: mcumgr's serial default, which MCUboot's and
/// Zephyr's default receive buffers take.
pub const SERIAL_DEFAULT_MTU: usize = 512;
/// Read timeout [`SerialTransport::open`] sets on the port: how often `recv` checks its
/// deadline when the line is quiet.
pub const SERIAL_READ_POLL: Duration = Duration::from_millis(20);
/// Pause after a read that returned nothing at once (non-blocking stream, EOF), so waiting
/// does not spin.
const IDLE_PAUSE: Duration = Duration::from_millis(2);

type Reopen<S> = Box<dyn FnMut() -> io::Result<S> + Send>;

/// SMP over the serial console framing ([`crate::serial`]), or brickless's raw framing
/// ([`crate::raw`]) once [`Transport::set_raw`] switched it, on any byte
/// stream: a serial port, a pty, a socket, a test pipe. Bytes outside frames (console
/// text) are skipped, as are frames that fail their checks (counted by
/// [`dropped_frames`](Self::dropped_frames)).
///
/// `recv` reads until its deadline, so the stream's reads must return within a short time
/// when nothing comes: set a read timeout (e.g. [`SERIAL_READ_POLL`]) or make it
/// non-blocking. A read that times out (`WouldBlock`, `TimedOut`) or returns 0 just means
/// "nothing yet".
pub struct SerialTransport<S: Read + Write + Send> {
    /// `None` after a failed re-open.
    stream: Option<S>,
    decoder: Box<AnyDecoder<SERIAL_RECV_MAX>>,
    framing: Framing,
    /// Bytes read but not yet fed to the decoder (they follow a completed packet).
    rx: Box<[u8; 512]>,
    rx_pos: usize,
    rx_end: usize,
    mtu: usize,
    dropped: u64,
    reopen: Option<Reopen<S>>,
}

impl<S: Read + Write + Send> std::fmt::Debug for SerialTransport<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialTransport")
            .field("mtu", &self.mtu)
            .field("dropped", &self.dropped)
            .field("reopen", &self.reopen.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write + Send> SerialTransport<S> {
    /// Frames over `stream`. [`reconnect`](Transport::reconnect) then only forgets partial
    /// frames; use [`with_reopen`](Self::with_reopen) for a stream that can be re-opened.
    pub fn new(stream: S) -> Self {
        Self {
            stream: Some(stream),
            decoder: Box::new(AnyDecoder::new()),
            framing: Framing::Console,
            rx: Box::new([0; 512]),
            rx_pos: 0,
            rx_end: 0,
            mtu: SERIAL_DEFAULT_MTU,
            dropped: 0,
            reopen: None,
        }
    }

    /// Frames over `stream`; [`reconnect`](Transport::reconnect) replaces it with what
    /// `reopen` returns.
    pub fn with_reopen(stream: S, reopen: impl FnMut() -> io::Result<S> + Send + 'static) -> Self {
        let mut t = Self::new(stream);
        t.reopen = Some(Box::new(reopen));
        t
    }

    /// Sets the largest packet [`send`](Transport::send) accepts (the device's receive
    /// buffer), at most [`SERIAL_RECV_MAX`] and at least 1.
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu.clamp(1, SERIAL_RECV_MAX);
        self
    }

    /// Frames received and dropped (bad base64, CRC mismatch, too long, cut short…) so far.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// The stream (`None` after a failed re-open).
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }

    /// The stream, e.g. to change its settings (`None` after a failed re-open).
    pub fn get_mut(&mut self) -> Option<&mut S> {
        self.stream.as_mut()
    }

    fn stream(&mut self) -> io::Result<&mut S> {
        self.stream.as_mut().ok_or_else(closed)
    }

    /// Feeds buffered bytes to the decoder; a completed packet, if any.
    fn drain(&mut self) -> Option<Vec<u8>> {
        while self.rx_pos < self.rx_end {
            let b = self.rx[self.rx_pos];
            self.rx_pos += 1;
            match self.decoder.push(b) {
                Some(Ok(_)) => return Some(self.decoder.packet().to_vec()),
                Some(Err(_)) => self.dropped += 1,
                None => {}
            }
        }
        None
    }
}

impl SerialTransport<Box<dyn serialport::SerialPort>> {
    /// Opens the serial port at `path` (8N1, no flow control) at `baud`, with a read
    /// timeout of [`SERIAL_READ_POLL`]. [`reconnect`](Transport::reconnect) re-opens the
    /// same path.
    pub fn open(path: &str, baud: u32) -> io::Result<Self> {
        let path = path.to_owned();
        let port = open_port(&path, baud)?;
        Ok(Self::with_reopen(port, move || open_port(&path, baud)))
    }
}

fn open_port(path: &str, baud: u32) -> io::Result<Box<dyn serialport::SerialPort>> {
    use serialport::{DataBits, FlowControl, Parity, StopBits};
    serialport::new(path, baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .timeout(SERIAL_READ_POLL)
        .open()
        .map_err(io::Error::from)
}

impl<S: Read + Write + Send> Transport for SerialTransport<S> {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        if packet.len() > self.mtu {
            return Err(too_long(packet.len(), self.mtu));
        }
        let mut wire = vec![0u8; raw::encoded_len(self.framing, packet.len())];
        let n = raw::encode_as(self.framing, packet, &mut wire)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = self.stream()?;
        stream.write_all(&wire[..n])?;
        stream.flush()
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(packet) = self.drain() {
                return Ok(packet);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(closed());
            };
            match stream.read(&mut self.rx[..]) {
                Ok(0) => std::thread::sleep(IDLE_PAUSE.min(left)),
                Ok(n) => {
                    self.rx_pos = 0;
                    self.rx_end = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(IDLE_PAUSE.min(left))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn reconnect(&mut self) -> io::Result<()> {
        if let Some(reopen) = &mut self.reopen {
            // Close the old handle first: serialport opens ports exclusively.
            self.stream = None;
            self.stream = Some(reopen()?);
        }
        self.decoder.reset();
        self.rx_pos = 0;
        self.rx_end = 0;
        Ok(())
    }

    fn set_raw(&mut self, on: bool) -> bool {
        self.framing = if on { Framing::Raw } else { Framing::Console };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::{self, Decoder};
    use std::os::unix::net::UnixStream;
    use std::thread;

    fn packet(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn udp_round_trip() {
        let device = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = device.local_addr().expect("addr");
        let echo = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            for _ in 0..2 {
                let (n, from) = device.recv_from(&mut buf).expect("recv");
                let mut reply = buf[..n].to_vec();
                reply[0] ^= 1; // a response op code
                device.send_to(&reply, from).expect("send");
            }
        });
        let mut t = UdpTransport::connect(addr, 1024).expect("connect");
        assert_eq!(t.peer_addr().expect("peer"), addr);
        assert_eq!(t.mtu(), 1024);
        for len in [14, 1024] {
            let p = packet(len, 2);
            t.send(&p).expect("send");
            let mut want = p.clone();
            want[0] ^= 1;
            assert_eq!(t.recv(Duration::from_secs(5)).expect("recv"), want);
        }
        echo.join().expect("echo thread");
        t.reconnect().expect("no-op");
        let e = t.send(&packet(1025, 0)).expect_err("over MTU");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn udp_recv_times_out() {
        let device = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut t = UdpTransport::connect(device.local_addr().expect("addr"), 512).expect("c");
        let start = Instant::now();
        let e = t.recv(Duration::from_millis(50)).expect_err("nothing sent");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(50));
        let e = t.recv(Duration::ZERO).expect_err("zero timeout");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    /// A device on the other end of `stream`: answers each request with `answers(request)`
    /// (console text, frames, all in several small writes).
    fn device(
        mut stream: UnixStream,
        requests: usize,
        answer: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
    ) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let mut d = Decoder::<SERIAL_RECV_MAX>::new();
            let mut buf = [0u8; 64];
            let mut served = 0;
            while served < requests {
                let n = match stream.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("device read: {e}"),
                };
                for &b in &buf[..n] {
                    if let Some(Ok(_)) = d.push(b) {
                        let wire = answer(d.packet());
                        for piece in wire.chunks(37) {
                            stream.write_all(piece).expect("device write");
                        }
                        served += 1;
                    }
                }
            }
        })
    }

    fn framed(p: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; serial::encoded_len(p.len())];
        serial::encode(p, &mut out).expect("encode");
        out
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().expect("pair");
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(10)))
                .expect("timeout");
        }
        (a, b)
    }

    #[test]
    fn serial_round_trip_over_unix_stream() {
        let (host, dev) = pair();
        let server = device(dev, 2, |req| {
            let mut reply = req.to_vec();
            reply.reverse();
            let mut wire = b"[00:00:01] log line\r\n".to_vec();
            wire.extend_from_slice(&framed(&reply));
            wire
        });
        let mut t = SerialTransport::new(host).with_mtu(2048);
        assert_eq!(t.mtu(), 2048);
        for len in [14, 2048] {
            let p = packet(len, 7);
            t.send(&p).expect("send");
            let mut want = p;
            want.reverse();
            assert_eq!(t.recv(Duration::from_secs(5)).expect("recv"), want);
        }
        server.join().expect("device thread");
        assert_eq!(t.dropped_frames(), 0);
        let e = t.send(&packet(2049, 0)).expect_err("over MTU");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn serial_keeps_bytes_after_a_packet_and_skips_bad_frames() {
        let (host, mut dev) = pair();
        // Two answers in one write, a corrupted frame between them.
        let a = packet(20, 1);
        let b = packet(300, 2);
        let mut bad = framed(&packet(20, 3));
        bad[5] ^= 0x01;
        let mut wire = framed(&a);
        wire.extend_from_slice(&bad);
        wire.extend_from_slice(&framed(&b));
        dev.write_all(&wire).expect("write");
        let mut t = SerialTransport::new(host);
        assert_eq!(t.recv(Duration::from_secs(5)).expect("first"), a);
        assert_eq!(t.recv(Duration::from_secs(5)).expect("second"), b);
        assert_eq!(t.dropped_frames(), 1);
        let start = Instant::now();
        let e = t.recv(Duration::from_millis(50)).expect_err("quiet line");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn serial_reconnect_uses_reopen() {
        let (host, dev) = pair();
        let (host2, dev2) = pair();
        let mut spare = Some(host2);
        let mut t = SerialTransport::with_reopen(host, move || {
            spare
                .take()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "gone"))
        });
        // A partial frame on the old link is forgotten.
        let mut dev = dev;
        dev.write_all(&framed(&packet(200, 5))[..50])
            .expect("write");
        drop(dev);
        let e = t.recv(Duration::from_millis(30)).expect_err("partial");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        t.reconnect().expect("reopen");
        let server = device(dev2, 1, framed);
        let p = packet(40, 9);
        t.send(&p).expect("send");
        assert_eq!(t.recv(Duration::from_secs(5)).expect("recv"), p);
        server.join().expect("device thread");
        assert_eq!(
            t.reconnect().expect_err("no more").kind(),
            io::ErrorKind::NotFound
        );
        assert!(t.get_ref().is_none());
        let e = t.send(&p).expect_err("closed");
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        let e = t.recv(Duration::from_millis(1)).expect_err("closed");
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
    }

    #[test]
    fn serial_open_missing_port_fails() {
        assert!(SerialTransport::open("/dev/brickless-no-such-port", 115_200).is_err());
    }

    #[test]
    fn transports_are_object_safe() {
        let device = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let t: Box<dyn Transport> =
            Box::new(UdpTransport::connect(device.local_addr().expect("addr"), 256).expect("c"));
        assert_eq!(t.mtu(), 256);
        let (host, _dev) = pair();
        let s: Box<dyn Transport> = Box::new(SerialTransport::new(host));
        assert_eq!(s.mtu(), SERIAL_DEFAULT_MTU);
    }
}
