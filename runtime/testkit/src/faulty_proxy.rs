//! A TCP proxy that stands between clients and a server (MinIO) and misbehaves on demand: it
//! breaks a share of requests (the connection closes mid-request, as a flaky network or an
//! overloaded load balancer would), delays every chunk it forwards (slow storage), or refuses
//! all traffic (an outage). The faults are real network faults: the clients' own retry and
//! timeout logic meets them, not a fake store.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often blocked reads wake up to look at the fault settings.
const POLL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Settings {
    /// Of each 1000 chunks a client sends, this many break their connection.
    error_permille: AtomicU32,
    /// Added before each forwarded chunk, both ways.
    delay_ms: AtomicU64,
    /// Every connection is closed at once, new ones as soon as they are accepted.
    down: AtomicBool,
    /// The proxy is being dropped.
    stop: AtomicBool,
    /// splitmix64 state of the error draws.
    draws: AtomicU64,
    /// Connections broken by an injected error, for the test's report.
    broken: AtomicU64,
}

impl Settings {
    fn draw_error(&self) -> bool {
        let permille = self.error_permille.load(Ordering::Relaxed);
        if permille == 0 {
            return false;
        }
        let mut x = self
            .draws
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        x % 1000 < u64::from(permille)
    }
}

/// The proxy; it listens on `127.0.0.1:port` until dropped.
pub struct FaultyProxy {
    port: u16,
    settings: Arc<Settings>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultyProxy {
    /// Forwards `127.0.0.1:<new port>` to `target` (`host:port`); `seed` seeds the error draws.
    pub fn start(target: &str, seed: u64) -> std::io::Result<FaultyProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let settings = Arc::new(Settings {
            draws: AtomicU64::new(seed),
            ..Settings::default()
        });
        let target = target.to_string();
        let shared = settings.clone();
        let acceptor = std::thread::spawn(move || accept_loop(listener, &target, &shared));
        Ok(FaultyProxy {
            port,
            settings,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:<port>`, for clients to use in place of the server's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Breaks about `permille` of each 1000 requests from now on (0: none).
    pub fn set_error_permille(&self, permille: u32) {
        self.settings
            .error_permille
            .store(permille.min(1000), Ordering::Relaxed);
    }

    /// Delays each forwarded chunk by `delay` from now on (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.settings
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Refuses all traffic (`true`) or passes it again (`false`).
    pub fn set_down(&self, down: bool) {
        self.settings.down.store(down, Ordering::Relaxed);
    }

    /// No errors, no delay, up.
    pub fn heal(&self) {
        self.set_error_permille(0);
        self.set_delay(Duration::ZERO);
        self.set_down(false);
    }

    /// Connections broken by injected errors so far.
    pub fn broken_connections(&self) -> u64 {
        self.settings.broken.load(Ordering::Relaxed)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.settings.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: &str, settings: &Arc<Settings>) {
    while !settings.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                if settings.down.load(Ordering::Relaxed) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue; // the server is down itself: the client sees a closed connection
                };
                let settings = settings.clone();
                std::thread::spawn(move || serve(client, server, &settings));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL / 4),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Copies both ways until either side closes or a fault breaks the connection.
fn serve(client: TcpStream, server: TcpStream, settings: &Arc<Settings>) {
    let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = {
        let settings = settings.clone();
        let (client, server) = (client_reader, server.try_clone());
        std::thread::spawn(move || {
            if let Ok(server) = server {
                copy(client, server, &settings, true);
            }
        })
    };
    copy(server_reader, client, settings, false);
    let _ = upstream.join();
}

/// Forwards `from` to `to` chunk by chunk; a request chunk (`from_client`) may draw an error.
/// Ends by shutting both sockets down, which also ends the copy the other way.
fn copy(mut from: TcpStream, mut to: TcpStream, settings: &Settings, from_client: bool) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if settings.down.load(Ordering::Relaxed) || settings.stop.load(Ordering::Relaxed) {
            break;
        }
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        if from_client && settings.draw_error() {
            settings.broken.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let delay = settings.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server; returns its address.
    fn echo() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let mut writer = stream;
                    let _ = std::io::copy(&mut reader, &mut writer);
                });
            }
        });
        address
    }

    fn round_trip(proxy: &FaultyProxy) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", proxy.port)) else {
            return false;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reply = [0u8; 5];
        stream.write_all(b"hello").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"hello"
    }

    #[test]
    fn passes_traffic_until_told_to_break_it() {
        let proxy = FaultyProxy::start(&echo(), 1).unwrap();
        assert!(round_trip(&proxy));
        proxy.set_down(true);
        assert!(!round_trip(&proxy));
        proxy.heal();
        assert!(round_trip(&proxy));
        proxy.set_error_permille(1000);
        assert!(!round_trip(&proxy));
        assert!(proxy.broken_connections() >= 1);
        proxy.set_error_permille(500);
        let ok = (0..200).filter(|_| round_trip(&proxy)).count();
        assert!((40..160).contains(&ok), "{ok} of 200 passed at 50%");
    }
}
