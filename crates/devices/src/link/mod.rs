//! Links a virtual device serves on: a pseudo-terminal that serial tools open as a port
//! ([`pty`]), and TCP ([`serve_tcp`]).

use std::net::{TcpListener, TcpStream};

pub mod faults;
pub mod pty;

/// Accepts connections on `listener` in a thread, and serves each in a thread of its own.
pub fn serve_tcp<F>(listener: TcpListener, serve: F) -> std::thread::JoinHandle<()>
where
    F: Fn(TcpStream) + Clone + Send + 'static,
{
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    })
}
