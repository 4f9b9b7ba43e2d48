//! An HTTP proxy that injects the faults a real server cannot be made to produce on demand:
//! whole-request error statuses, refused connections and slow answers.
//!
//! Every request is forwarded to the upstream with `Connection: close`, one connection per
//! request, so a fault applies to exactly the requests made while it is set.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::HarnessError;

/// What the proxy does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the upstream unchanged.
    None,
    /// Answer every request with this status (429, 503, …) without forwarding it.
    Status(u16),
    /// Refuse connections (the listening socket is closed), as a server that is down.
    Refuse,
    /// Wait this many milliseconds, then forward.
    DelayMs(u64),
}

struct State {
    fault: Fault,
    fail_next: u64,
    fail_next_status: u16,
}

struct Shared {
    state: Mutex<State>,
    requests: AtomicU64,
    faulted: AtomicU64,
    stopping: AtomicBool,
}

/// A fault-injecting HTTP proxy on a free loopback port in front of `upstream`.
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        Self::try_start(upstream).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts a proxy; an error says why.
    pub fn try_start(upstream: &str) -> Result<FaultProxy, HarnessError> {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(HarnessError::io("bind fault proxy"))?;
        let address = listener
            .local_addr()
            .map_err(HarnessError::io("fault proxy address"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                fault: Fault::None,
                fail_next: 0,
                fail_next_status: 503,
            }),
            requests: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(Some(listener), address, upstream, acceptor_shared))
            .map_err(HarnessError::io("spawn fault proxy"))?;
        Ok(FaultProxy {
            address,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The proxy's URL, `http://127.0.0.1:PORT`; point the client under test here.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Applies `fault` to every request from now on (until set again).
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// Answers the next `count` requests with `status`, then goes back to the set fault.
    pub fn fail_next(&self, count: u64, status: u16) {
        let mut state = self.lock();
        state.fail_next = count;
        state.fail_next_status = status;
    }

    /// Requests seen so far (forwarded or faulted).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with an injected status so far.
    pub fn faulted(&self) -> u64 {
        self.shared.faulted.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor if it is blocked in accept().
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(200));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(
    mut listener: Option<TcpListener>,
    address: SocketAddr,
    upstream: String,
    shared: Arc<Shared>,
) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let refusing = {
            let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.fault == Fault::Refuse
        };
        if refusing {
            // Closing the socket is what makes clients see "connection refused".
            listener = None;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let active = match listener.take() {
            Some(active) => active,
            None => match TcpListener::bind(address) {
                Ok(rebound) => rebound,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        // Non-blocking accept with a short poll, so a switch to Refuse takes effect quickly.
        if active.set_nonblocking(true).is_err() {
            listener = Some(active);
            continue;
        }
        match active.accept() {
            Ok((client, _)) => {
                let upstream = upstream.clone();
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = client.set_nonblocking(false);
                    let _ = handle(client, &upstream, &shared);
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => {}
        }
        listener = Some(active);
    }
}

fn handle(mut client: TcpStream, upstream: &str, shared: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = read_request(&mut client)?;
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let action = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.fail_next > 0 {
            state.fail_next -= 1;
            Fault::Status(state.fail_next_status)
        } else {
            state.fault
        }
    };
    match action {
        Fault::Status(status) => {
            shared.faulted.fetch_add(1, Ordering::SeqCst);
            let body = format!(
                "{{\"error\":{{\"type\":\"injected_fault\",\"reason\":\"fault proxy answered {status}\"}},\"status\":{status}}}"
            );
            let response = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(response.as_bytes())
        }
        Fault::Refuse => Ok(()),
        Fault::DelayMs(delay) => {
            std::thread::sleep(Duration::from_millis(delay));
            forward(&mut client, upstream, &request)
        }
        Fault::None => forward(&mut client, upstream, &request),
    }
}

fn forward(client: &mut TcpStream, upstream: &str, request: &[u8]) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(request)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    client.write_all(&response)
}

/// Reads one request (headers and a Content-Length body) and rewrites it to close the connection.
fn read_request(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let read = client.read(&mut chunk)?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut content_length = 0usize;
    let mut rewritten = String::with_capacity(head.len() + 32);
    for line in head.split("\r\n").filter(|line| !line.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut body = buffer[header_end..].to_vec();
    while body.len() < content_length {
        let read = client.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    let mut request = rewritten.into_bytes();
    request.extend_from_slice(&body);
    Ok(request)
}
