//! A fault-injecting loopback HTTP/1.1 proxy for the AWS emulator. Tests point the SDK at it
//! (AWS_ENDPOINT_URL) and choose, per request, to forward it or to inject a fault: a connection
//! reset, a stall longer than the client's timeout, an HTTP 503 throttling error, a 403 access
//! denial, or a hold (the request waits, unforwarded, until released). It counts requests per
//! operation and, for PutSnapshotBlock, how often the emulator accepted each (snapshot, block).
//!
//! Size: ~680 lines: one HTTP/1.1 proxy with its fault policies and counters; the parts share the
//! connection loop, and a split would spread one state machine over files.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The AWS operation: `PutSnapshotBlock`, `RegisterImage`, `DescribeKey`, ...
    pub operation: String,
    /// 1-based number of this request among all requests.
    pub seq: u64,
    /// 1-based number of this request among those of its operation.
    pub op_seq: u64,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// (snapshot id, block index) of a PutSnapshotBlock or GetSnapshotBlock.
    pub fn block(&self) -> Option<(String, u64)> {
        let parts: Vec<&str> = self
            .path
            .split('?')
            .next()?
            .trim_matches('/')
            .split('/')
            .collect();
        match parts.as_slice() {
            ["snapshots", id, "blocks", index] => Some((id.to_string(), index.parse().ok()?)),
            _ => None,
        }
    }

    fn protocol(&self) -> Protocol {
        if self.header("x-amz-target").is_some() {
            Protocol::AwsJson
        } else if self.path.starts_with("/snapshots") {
            Protocol::RestJson
        } else {
            Protocol::Query
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    RestJson,
    AwsJson,
    Query,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Forward,
    /// Close the connection with a TCP reset, without a response.
    Reset,
    /// Hold the request (unforwarded) for this long, then close the connection.
    Stall(Duration),
    /// HTTP 503 with the protocol's throttling error.
    Throttle,
    /// HTTP 403 with the protocol's access-denied error.
    AccessDenied,
    /// Hold the request, unforwarded, until `release_holds`; then close the connection.
    Hold,
    /// Forward it, then drop the response with a reset: the emulator acted, the client never knows.
    ForwardThenReset,
    /// Forward it, then hold the response until `release_holds`, then close the connection.
    ForwardThenHold,
}

type Policy = Arc<dyn Fn(&Request) -> Action + Send + Sync>;

#[derive(Default)]
struct Counters {
    seen: HashMap<String, u64>,
    /// Forwarded and answered 2xx by the emulator.
    accepted: HashMap<String, u64>,
    faults: HashMap<String, u64>,
    block_accepts: BTreeMap<(String, u64), u32>,
    total: u64,
    /// Requests of each operation being handled right now, and the most there ever were.
    in_flight: HashMap<String, u64>,
    peak_in_flight: HashMap<String, u64>,
    /// PutSnapshotBlock requests being handled right now per snapshot, and the most distinct
    /// snapshots that ever had one at once.
    snapshots_in_flight: HashMap<String, u64>,
    peak_snapshots_in_flight: u64,
}

struct Shared {
    upstream_port: u16,
    policy: Mutex<Policy>,
    counters: Mutex<Counters>,
    holds: Mutex<u64>,
    released: Condvar,
    held_now: AtomicU64,
    stop: AtomicBool,
}

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream_port,
            policy: Mutex::new(Arc::new(|_: &Request| Action::Forward)),
            counters: Mutex::new(Counters::default()),
            holds: Mutex::new(0),
            released: Condvar::new(),
            held_now: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Proxy { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Decides the fate of every following request.
    pub fn set_policy(&self, policy: impl Fn(&Request) -> Action + Send + Sync + 'static) {
        *self.shared.policy.lock().unwrap() = Arc::new(policy);
    }

    /// Forwards everything again.
    pub fn clear_policy(&self) {
        self.set_policy(|_| Action::Forward);
    }

    /// Requests seen for an operation.
    pub fn seen(&self, operation: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .unwrap()
            .seen
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests of an operation the emulator answered with 2xx.
    pub fn accepted(&self, operation: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .unwrap()
            .accepted
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests of an operation that got a fault instead of a forward.
    pub fn faults(&self, operation: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .unwrap()
            .faults
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// How often the emulator accepted each (snapshot id, block index).
    pub fn block_accepts(&self) -> BTreeMap<(String, u64), u32> {
        self.shared.counters.lock().unwrap().block_accepts.clone()
    }

    /// The most requests of an operation ever handled at once (from arrival, before the policy
    /// is asked, until the emulator answered).
    pub fn peak_in_flight(&self, operation: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .unwrap()
            .peak_in_flight
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The most distinct snapshots that ever had a PutSnapshotBlock in flight at once.
    pub fn peak_snapshots_in_flight(&self) -> u64 {
        self.shared
            .counters
            .lock()
            .unwrap()
            .peak_snapshots_in_flight
    }

    /// Blocks the emulator accepted more than once for the same snapshot.
    pub fn blocks_sent_twice(&self) -> u64 {
        self.block_accepts()
            .values()
            .filter(|&&n| n > 1)
            .map(|&n| u64::from(n - 1))
            .sum()
    }

    /// Requests waiting in a hold right now.
    pub fn held(&self) -> u64 {
        self.shared.held_now.load(Ordering::SeqCst)
    }

    /// Lets every held request go (its connection is closed; nothing is forwarded).
    pub fn release_holds(&self) {
        *self.shared.holds.lock().unwrap() += 1;
        self.shared.released.notify_all();
    }

    /// Forgets all counts.
    pub fn reset_counters(&self) {
        *self.shared.counters.lock().unwrap() = Counters::default();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.release_holds();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(client: TcpStream, shared: &Shared) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut client = client;
    while let Some(mut req) = read_request(&mut reader, &mut client) {
        let policy = Arc::clone(&*shared.policy.lock().unwrap());
        {
            let mut c = shared.counters.lock().unwrap();
            c.total += 1;
            let n = c.seen.entry(req.operation.clone()).or_default();
            *n += 1;
            req.op_seq = *n;
            req.seq = c.total;
        }
        let in_flight = InFlight::enter(shared, &req);
        let action = policy(&req);
        if !matches!(
            action,
            Action::Forward | Action::ForwardThenReset | Action::ForwardThenHold
        ) {
            *shared
                .counters
                .lock()
                .unwrap()
                .faults
                .entry(req.operation.clone())
                .or_default() += 1;
        }
        match action {
            Action::Forward | Action::ForwardThenReset | Action::ForwardThenHold => {
                let forwarded = forward(shared, &req);
                // Out of flight once the emulator answered: the client, still waiting for the
                // answer, counts it in flight at least as long.
                drop(in_flight);
                let Some((status, response)) = forwarded else {
                    reset(&client);
                    return;
                };
                if (200..300).contains(&status) {
                    let mut c = shared.counters.lock().unwrap();
                    *c.accepted.entry(req.operation.clone()).or_default() += 1;
                    if req.operation == "PutSnapshotBlock"
                        && let Some(key) = req.block()
                    {
                        *c.block_accepts.entry(key).or_default() += 1;
                    }
                }
                match action {
                    Action::ForwardThenReset => {
                        reset(&client);
                        return;
                    }
                    Action::ForwardThenHold => {
                        hold(shared, None);
                        reset(&client);
                        return;
                    }
                    _ => {
                        if client.write_all(&response).is_err() {
                            return;
                        }
                    }
                }
            }
            Action::Reset => {
                reset(&client);
                return;
            }
            Action::Stall(d) => {
                hold(shared, Some(d));
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            Action::Hold => {
                hold(shared, None);
                reset(&client);
                return;
            }
            Action::Throttle => {
                if client
                    .write_all(&error_response(&req, 503, "Slow Down", Fault::Throttle))
                    .is_err()
                {
                    return;
                }
            }
            Action::AccessDenied => {
                if client
                    .write_all(&error_response(&req, 403, "Forbidden", Fault::Denied))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Counts a request as in flight until dropped.
struct InFlight<'a> {
    shared: &'a Shared,
    operation: String,
    snapshot: Option<String>,
}

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, req: &Request) -> InFlight<'a> {
        let snapshot = (req.operation == "PutSnapshotBlock")
            .then(|| req.block().map(|(id, _)| id))
            .flatten();
        let mut c = shared.counters.lock().unwrap();
        let now = {
            let n = c.in_flight.entry(req.operation.clone()).or_default();
            *n += 1;
            *n
        };
        let peak = c.peak_in_flight.entry(req.operation.clone()).or_default();
        *peak = (*peak).max(now);
        if let Some(id) = &snapshot {
            *c.snapshots_in_flight.entry(id.clone()).or_default() += 1;
            let distinct = c.snapshots_in_flight.len() as u64;
            c.peak_snapshots_in_flight = c.peak_snapshots_in_flight.max(distinct);
        }
        InFlight {
            shared,
            operation: req.operation.clone(),
            snapshot,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut c = self.shared.counters.lock().unwrap();
        if let Some(n) = c.in_flight.get_mut(&self.operation) {
            *n = n.saturating_sub(1);
        }
        if let Some(id) = &self.snapshot
            && let Some(n) = c.snapshots_in_flight.get_mut(id)
        {
            *n -= 1;
            if *n == 0 {
                c.snapshots_in_flight.remove(id);
            }
        }
    }
}

/// Waits for `release_holds` (or the timeout, or the proxy's end).
fn hold(shared: &Shared, timeout: Option<Duration>) {
    shared.held_now.fetch_add(1, Ordering::SeqCst);
    let start = std::time::Instant::now();
    let mut generation = shared.holds.lock().unwrap();
    let first = *generation;
    while *generation == first && !shared.stop.load(Ordering::Relaxed) {
        let wait = match timeout {
            Some(t) => match t.checked_sub(start.elapsed()) {
                Some(left) => left.min(Duration::from_millis(200)),
                None => break,
            },
            None => Duration::from_millis(200),
        };
        generation = shared.released.wait_timeout(generation, wait).unwrap().0;
    }
    drop(generation);
    shared.held_now.fetch_sub(1, Ordering::SeqCst);
}

/// Closes with RST rather than FIN (SO_LINGER 0).
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own with a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn read_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut first = String::new();
    loop {
        first.clear();
        if reader.read_line(&mut first).ok()? == 0 {
            return None;
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some((first.trim_end().to_string(), headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, String)],
    until_eof: bool,
) -> Option<Vec<u8>> {
    if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t).ok()? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                return Some(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).ok()?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
    }
    if let Some(len) = header(headers, "content-length") {
        let len: usize = len.parse().ok()?;
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
        return Some(body);
    }
    let mut body = Vec::new();
    if until_eof {
        reader.read_to_end(&mut body).ok()?;
    }
    Some(body)
}

fn read_request(reader: &mut BufReader<TcpStream>, client: &mut TcpStream) -> Option<Request> {
    let (line, headers) = read_head(reader)?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let body = read_body(reader, &headers, false)?;
    let mut req = Request {
        method,
        path,
        headers,
        body,
        operation: String::new(),
        seq: 0,
        op_seq: 0,
    };
    req.operation = operation(&req);
    Some(req)
}

fn operation(req: &Request) -> String {
    if let Some(target) = req.header("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let path = req.path.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["snapshots"]) => Some("StartSnapshot"),
        ("POST", ["snapshots", "completion", _]) => Some("CompleteSnapshot"),
        ("PUT", ["snapshots", _, "blocks", _]) => Some("PutSnapshotBlock"),
        ("GET", ["snapshots", _, "blocks", _]) => Some("GetSnapshotBlock"),
        ("GET", ["snapshots", _, "blocks"]) => Some("ListSnapshotBlocks"),
        ("GET", ["snapshots", _, "changedblocks"]) => Some("ListChangedBlocks"),
        _ => None,
    };
    if let Some(op) = rest {
        return op.to_string();
    }
    let form = String::from_utf8_lossy(&req.body);
    for pair in form.split('&') {
        if let Some(action) = pair.strip_prefix("Action=") {
            return action.to_string();
        }
    }
    format!("{} {}", req.method, path)
}

/// Sends the request to the emulator on a fresh connection; returns the status and the
/// response re-framed for the client (Content-Length, keep-alive).
fn forward(shared: &Shared, req: &Request) -> Option<(u16, Vec<u8>)> {
    let mut up = TcpStream::connect(("127.0.0.1", shared.upstream_port)).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(300))).ok()?;
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.path).into_bytes();
    for (k, v) in &req.headers {
        if [
            "connection",
            "content-length",
            "transfer-encoding",
            "expect",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            req.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&req.body);
    up.write_all(&out).ok()?;
    let mut reader = BufReader::new(up);
    let (status_line, headers) = read_head(&mut reader)?;
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let body = if req.method == "HEAD" || status == 204 || status == 304 {
        Vec::new()
    } else {
        read_body(&mut reader, &headers, true)?
    };
    let mut resp = format!("{status_line}\r\n").into_bytes();
    for (k, v) in &headers {
        if [
            "connection",
            "content-length",
            "transfer-encoding",
            "keep-alive",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        resp.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    resp.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    resp.extend_from_slice(&body);
    Some((status, resp))
}

#[derive(Clone, Copy)]
enum Fault {
    Throttle,
    Denied,
}

fn error_response(req: &Request, status: u16, reason: &str, fault: Fault) -> Vec<u8> {
    let (json_code, query_code, message) = match fault {
        Fault::Throttle => (
            "ThrottlingException",
            "RequestLimitExceeded",
            "Rate exceeded (injected by the test proxy)",
        ),
        Fault::Denied => (
            "AccessDeniedException",
            "UnauthorizedOperation",
            "You are not authorized to perform this operation (injected by the test proxy)",
        ),
    };
    let (content_type, extra, body) = match req.protocol() {
        Protocol::RestJson => (
            "application/json",
            format!("x-amzn-ErrorType: {json_code}\r\n"),
            format!(r#"{{"message":"{message}"}}"#),
        ),
        Protocol::AwsJson => (
            "application/x-amz-json-1.1",
            String::new(),
            format!(r#"{{"__type":"{json_code}","message":"{message}"}}"#),
        ),
        Protocol::Query => (
            "text/xml",
            String::new(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{query_code}</Code>\
                 <Message>{message}</Message></Error></Errors><RequestID>proxy-{}</RequestID></Response>",
                req.seq
            ),
        ),
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{extra}x-amzn-RequestId: proxy-{}\r\nContent-Length: {}\r\n\r\n{body}",
        req.seq,
        body.len()
    )
    .into_bytes()
}
