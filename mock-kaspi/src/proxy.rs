//! Loopback forward proxies: each listens on its own port, connects out from its own address in
//! 127.0.0.0/8, and stamps that address in `X-Forwarded-For` (replacing whatever the client sent,
//! so no client can spoof it). The fake Kaspi therefore sees a distinct client IP per proxy, as
//! the real Kaspi would.
//!
//! They speak plain HTTP/1.1 with absolute-form request targets and Basic proxy authentication
//! (407 on bad credentials). Each upstream exchange is one connection (`Connection: close`).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use rotor_engine::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How a proxy behaves; switch it at runtime with [`ForwardProxy::set_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards requests.
    Alive,
    /// Its port is closed: connections are refused.
    Refused,
    /// Accepts, then never answers (for at most two minutes).
    Timeout,
    /// Answers 407 to everything.
    AuthRequired,
    /// Forwards after this added delay.
    Slow(Duration),
    /// Answers 502 Bad Gateway to this many requests in a million, on a draw of its own
    /// (seeded by its egress address), and forwards the rest.
    Flaky(u32),
}

/// A running loopback forward proxy. Dropping it stops it.
pub struct ForwardProxy {
    addr: SocketAddr,
    egress: Ipv4Addr,
    mode: watch::Sender<ProxyMode>,
    task: JoinHandle<()>,
    login: Login,
    slowed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

/// The credentials a proxy demands, shared with whoever may change them (the Proxy6 fake sets
/// them when it sells the proxy).
pub(crate) type Login = Arc<std::sync::Mutex<Option<(String, Secret)>>>;

/// Called with each request head's headers as soon as the proxy has read it (the load harness
/// times decision-to-wire with it).
pub type HeadHook = Arc<dyn Fn(&[(String, String)]) + Send + Sync>;

struct Config {
    egress: Ipv4Addr,
    login: Login,
    hook: Option<HeadHook>,
    /// Requests held back by [`ProxyMode::Slow`].
    slowed: Arc<AtomicU64>,
    /// Requests answered 502 by [`ProxyMode::Flaky`].
    failed: Arc<AtomicU64>,
    /// Requests read, numbering the flaky draws.
    seen: AtomicU64,
}

const MAX_HEAD: usize = 64 * 1024;
const HOLD: Duration = Duration::from_secs(120);

impl ForwardProxy {
    /// Starts a proxy that egresses from `egress` (an address in 127.0.0.0/8) and, if `login`
    /// is given, demands those Basic credentials.
    pub async fn start(egress: Ipv4Addr, login: Option<(String, Secret)>) -> std::io::Result<Self> {
        Self::start_with_hook(egress, login, None).await
    }

    /// Like [`ForwardProxy::start`], calling `hook` with every request head it reads.
    pub async fn start_with_hook(
        egress: Ipv4Addr,
        login: Option<(String, Secret)>,
        hook: Option<HeadHook>,
    ) -> std::io::Result<Self> {
        if !egress.is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("egress {egress} is not in 127.0.0.0/8; fake proxies stay on loopback"),
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(ProxyMode::Alive);
        let slowed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let config = Arc::new(Config {
            egress,
            login: Arc::new(std::sync::Mutex::new(login)),
            hook,
            slowed: Arc::clone(&slowed),
            failed: Arc::clone(&failed),
            seen: AtomicU64::new(0),
        });
        let login = Arc::clone(&config.login);
        let task = tokio::spawn(accept_loop(listener, addr, rx, config));
        Ok(ForwardProxy { addr, egress, mode: tx, task, login, slowed, failed })
    }

    /// The proxy's URL, such as `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it connects out from, which the fake Kaspi sees.
    pub fn egress(&self) -> Ipv4Addr {
        self.egress
    }

    /// Switches its behaviour.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// How many requests it has held back in [`ProxyMode::Slow`] (what a `slow` fault did).
    pub fn slowed(&self) -> u64 {
        self.slowed.load(Ordering::Relaxed)
    }

    /// How many requests it has answered 502 in [`ProxyMode::Flaky`] (what a `flaky` fault did).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Changes the credentials it demands (`None`: anyone may use it).
    pub fn set_login(&self, login: Option<(String, Secret)>) {
        *self.login.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = login;
    }

    pub(crate) fn login_cell(&self) -> Login {
        Arc::clone(&self.login)
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    mut mode: watch::Receiver<ProxyMode>,
    config: Arc<Config>,
) {
    let mut listener = Some(listener);
    loop {
        if *mode.borrow() == ProxyMode::Refused {
            // Close the port until the mode changes, then take the same port again.
            listener = None;
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        if listener.is_none() {
            // Reopen the same port; if it is briefly busy, try again shortly.
            listener = TcpListener::bind(addr).await.ok();
            if listener.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let Some(l) = listener.take() else { continue };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve(stream, mode.clone(), Arc::clone(&config)));
                }
                listener = Some(l);
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                listener = Some(l);
            }
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str, extra: &str) {
    let body = format!("{status}\n");
    let msg = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(msg.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What the proxy's `mode` does to a request before it is forwarded: false when the fault
/// answered it or dropped the connection (nothing is forwarded), true when it goes on.
async fn fault(client: &mut TcpStream, mode: ProxyMode, config: &Config) -> bool {
    match mode {
        ProxyMode::AuthRequired => {
            respond(
                client,
                "407 Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"rotor-mock\"\r\n",
            )
            .await;
            false
        }
        ProxyMode::Timeout => {
            tokio::time::sleep(HOLD).await;
            false
        }
        // The port closed after this connection opened: the connection goes too.
        ProxyMode::Refused => false,
        ProxyMode::Slow(d) => {
            config.slowed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(d).await;
            true
        }
        ProxyMode::Flaky(per_million) => {
            let n = config.seen.fetch_add(1, Ordering::Relaxed);
            if draw_per_million(config.egress, n) < per_million {
                config.failed.fetch_add(1, Ordering::Relaxed);
                respond(client, "502 Bad Gateway", "").await;
                return false;
            }
            true
        }
        ProxyMode::Alive => true,
    }
}

/// The `n`-th draw of the proxy egressing from `egress`, uniform in 0..1,000,000 (SplitMix64):
/// the same proxy fails the same requests run after run.
fn draw_per_million(egress: Ipv4Addr, n: u64) -> u32 {
    let mut z = (u64::from(u32::from(egress)) << 32 ^ n).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) % 1_000_000) as u32
}

/// Reads up to the end of a message head from `stream`, starting with the bytes already in
/// `buf`; returns the head and leaves what follows it in `buf`. `None` at a clean close, on a
/// head over 64 KiB, or after 10 s of silence.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads exactly `len` body bytes: those already in `buf` first, then from `stream`.
async fn read_body(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 8192];
    while buf.len() < len {
        let n = tokio::time::timeout(HOLD, stream.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf.drain(..len).collect())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn content_length(headers: &[(String, String)]) -> usize {
    header(headers, "content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect()
}

fn authorized(headers: &[(String, String)], login: Option<&(String, Secret)>) -> bool {
    let Some((user, pass)) = login else { return true };
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", pass.expose()));
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("proxy-authorization")
            && v.strip_prefix("Basic ").is_some_and(|b| b.trim() == expected)
    })
}

/// One upstream connection, kept open across requests while the fake Kaspi keeps it.
struct Upstream {
    addr: SocketAddrV4,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Upstream {
    async fn connect(&mut self, egress: Ipv4Addr) -> Option<&mut TcpStream> {
        if self.stream.is_none() {
            let socket = TcpSocket::new_v4().ok()?;
            socket.bind(SocketAddr::V4(SocketAddrV4::new(egress, 0))).ok()?;
            self.stream = Some(socket.connect(SocketAddr::V4(self.addr)).await.ok()?);
            self.buf.clear();
        }
        self.stream.as_mut()
    }

    /// Sends one request and reads its whole answer (head and `Content-Length` body); `None`
    /// when the connection failed, which the caller retries once on a fresh one.
    async fn exchange(&mut self, egress: Ipv4Addr, request: &[u8]) -> Option<(String, Vec<u8>)> {
        let stream = self.connect(egress).await?;
        if stream.write_all(request).await.is_err() {
            self.stream = None;
            return None;
        }
        let mut buf = std::mem::take(&mut self.buf);
        let stream = self.stream.as_mut()?;
        let Some(head) = read_head(stream, &mut buf).await else {
            self.stream = None;
            return None;
        };
        let headers = parse_headers(head.split("\r\n").skip(1));
        let Some(body) = read_body(stream, &mut buf, content_length(&headers)).await else {
            self.stream = None;
            return None;
        };
        if header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.stream = None;
        }
        self.buf = buf;
        Some((head, body))
    }
}

/// Serves one client connection: requests one after another (HTTP/1.1 keep-alive), each
/// forwarded over one kept upstream connection. The mode is read per request, so a proxy that
/// dies closes its open connections at their next request.
async fn serve(mut client: TcpStream, mode: watch::Receiver<ProxyMode>, config: Arc<Config>) {
    let mut buf = Vec::with_capacity(4096);
    let mut upstream: Option<Upstream> = None;
    loop {
        let Some(head) = read_head(&mut client, &mut buf).await else { return };
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers = parse_headers(lines);
        if let Some(hook) = &config.hook {
            hook(&headers);
        }
        let current = *mode.borrow();
        if !fault(&mut client, current, &config).await {
            return;
        }
        let login = config.login.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if !authorized(&headers, login.as_ref()) {
            return respond(
                &mut client,
                "407 Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"rotor-mock\"\r\n",
            )
            .await;
        }
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return respond(&mut client, "400 Bad Request", "").await;
        };
        if method == "CONNECT" {
            return respond(&mut client, "405 Method Not Allowed", "").await;
        }
        let Some(after_scheme) = target.strip_prefix("http://") else {
            return respond(&mut client, "400 Bad Request", "").await;
        };
        let (authority, path) = after_scheme.split_at(after_scheme.find('/').unwrap_or(after_scheme.len()));
        let path = if path.is_empty() { "/" } else { path };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().unwrap_or(80)),
            None => (authority, 80),
        };
        let host_ip = match host {
            "localhost" => Ipv4Addr::LOCALHOST,
            h => match h.parse::<Ipv4Addr>() {
                Ok(ip) if ip.is_loopback() => ip,
                // Fake proxies only ever reach loopback.
                _ => return respond(&mut client, "502 Bad Gateway", "").await,
            },
        };
        let Some(body) = read_body(&mut client, &mut buf, content_length(&headers)).await else { return };
        let mut out = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            let drop =
                ["proxy-authorization", "proxy-connection", "x-forwarded-for", "connection", "keep-alive"]
                    .iter()
                    .any(|h| k.eq_ignore_ascii_case(h));
            if !drop {
                let _ = write!(out, "{k}: {v}\r\n");
            }
        }
        let _ = write!(out, "X-Forwarded-For: {}\r\n\r\n", config.egress);
        let mut request = out.into_bytes();
        request.extend_from_slice(&body);
        let addr = SocketAddrV4::new(host_ip, port);
        if upstream.as_ref().is_none_or(|u| u.addr != addr) {
            upstream = Some(Upstream { addr, stream: None, buf: Vec::new() });
        }
        let Some(up) = upstream.as_mut() else { return };
        // A kept connection the fake Kaspi closed meanwhile fails at once: retry on a new one.
        let answer = match up.exchange(config.egress, &request).await {
            Some(a) => Some(a),
            None => up.exchange(config.egress, &request).await,
        };
        let Some((head, body)) = answer else {
            return respond(&mut client, "502 Bad Gateway", "").await;
        };
        let close = header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut reply = head.into_bytes();
        reply.extend_from_slice(b"\r\n\r\n");
        reply.extend_from_slice(&body);
        if client.write_all(&reply).await.is_err() || close {
            return;
        }
    }
}
