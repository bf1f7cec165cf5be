//! The HTTP layer over loopback, with raw requests: what a scraper, curl or a stray client
//! gets.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const PATHS: &[&str] = &["/health", "/metrics"];

async fn server(limits: Limits) -> (std::net::SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let page = |path: &'static str| async move { (StatusCode::OK, "text/plain", format!("page {path}\n")) };
    tokio::spawn(serve(listener, PATHS, limits, page, stopped));
    (addr, stop)
}

/// Sends `raw` and reads until the server closes (every request here says `Connection: close`,
/// or is refused).
async fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open: {}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

fn get(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn get_head_and_a_query_string_reach_the_page() {
    let (addr, _stop) = server(Limits::STATUS).await;
    let got = exchange(addr, &get("GET", "/metrics")).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("content-type: text/plain") && got.ends_with("\r\n\r\npage /metrics\n"), "{got}");
    let got = exchange(addr, &get("GET", "/health?verbose=1&x")).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with("page /health\n"), "{got}");
    let got = exchange(addr, &get("HEAD", "/health")).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("content-length: 13\r\n") && got.ends_with("\r\n\r\n"), "HEAD sent a body: {got}");
}

#[tokio::test]
async fn an_unknown_path_is_404_and_another_method_405_with_allow() {
    let (addr, _stop) = server(Limits::STATUS).await;
    let got = exchange(addr, &get("GET", "/healthz")).await;
    assert!(got.starts_with("HTTP/1.1 404 Not Found\r\n"), "{got}");
    assert!(got.ends_with("not found; try /health, /metrics\n"), "{got}");
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let got = exchange(addr, &get(method, "/metrics")).await;
        assert!(got.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{method}: {got}");
        assert!(got.contains("allow: GET, HEAD\r\n"), "{method}: {got}");
    }
}

#[tokio::test]
async fn an_oversized_head_or_body_is_refused_and_a_slow_head_is_cut() {
    let limits = Limits { head_timeout: Duration::from_millis(200), ..Limits::STATUS };
    let (addr, _stop) = server(limits).await;
    let big = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(40_000));
    let got = exchange(addr, big.as_bytes()).await;
    assert!(got.starts_with("HTTP/1.1 431 "), "{}", &got[..got.len().min(200)]);
    let body = "b".repeat(2000);
    let post = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let got = exchange(addr, post.as_bytes()).await;
    assert!(got.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{got}");
    assert!(got.ends_with("a request body is at most 1024 bytes here\n"), "{got}");
    // A client that never finishes its head is cut off; the server goes on serving.
    let got = exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    assert!(!got.contains("200 OK"), "{got}");
    let got = exchange(addr, &get("GET", "/health")).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
}

#[tokio::test]
async fn stop_ends_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = watch::channel(false);
    let page = |_: &'static str| async { (StatusCode::OK, "text/plain", String::new()) };
    let task = tokio::spawn(serve(listener, PATHS, Limits::STATUS, page, stopped));
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
}
