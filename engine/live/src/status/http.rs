//! The status endpoint's HTTP: hyper's HTTP/1.1 server, with the limits a loopback service
//! still needs (a bounded head, a bounded body, a deadline to send the head and one per
//! connection). Routing is by path, query strings ignored; `HEAD` answers as `GET` without the
//! body; a known path asked with another method gets 405 with `Allow`, an unknown one 404.
//! What each page says is the caller's: this module knows only the paths.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A page's answer: status, content type, body.
pub(crate) type Page = (StatusCode, &'static str, String);

/// The limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The longest request head read (hyper's buffer; at least 8 KiB), else 431.
    pub(crate) head_bytes: usize,
    /// The longest request body accepted, else 413 (the status pages take none).
    pub(crate) body_bytes: usize,
    /// How long a client may take to send its request head.
    pub(crate) head_timeout: Duration,
    /// How long one connection may stay open, keep-alive included.
    pub(crate) connection_timeout: Duration,
}

impl Limits {
    /// The status endpoint's limits.
    pub(crate) const STATUS: Limits = Limits {
        head_bytes: 16 * 1024,
        body_bytes: 1024,
        head_timeout: Duration::from_secs(5),
        connection_timeout: Duration::from_secs(60),
    };
}

/// Serves `paths` on `listener` until `stop`: each request for one of them (by `GET` or
/// `HEAD`) is answered by `page(path)`.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    paths: &'static [&'static str],
    limits: Limits,
    page: F,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(&'static str) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Page> + Send + 'static,
{
    let page = Arc::new(page);
    let connections = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (page, mut stopped) = (Arc::clone(&page), connections.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, paths, limits, Arc::clone(&page))
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.head_timeout)
                        .max_buf_size(limits.head_bytes.max(8192))
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = tokio::time::timeout(limits.connection_timeout, conn) => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn answer<F, Fut>(
    req: Request<hyper::body::Incoming>,
    paths: &'static [&'static str],
    limits: Limits,
    page: Arc<F>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = Page>,
{
    let (parts, body) = req.into_parts();
    let Some(&path) = paths.iter().find(|&&p| p == parts.uri.path()) else {
        let listed = paths.join(", ");
        return Ok(reply((StatusCode::NOT_FOUND, "text/plain", format!("not found; try {listed}\n"))));
    };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut r = reply((StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET and HEAD\n".into()));
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    if Limited::new(body, limits.body_bytes).collect().await.is_err() {
        let said = format!("a request body is at most {} bytes here\n", limits.body_bytes);
        return Ok(reply((StatusCode::PAYLOAD_TOO_LARGE, "text/plain", said)));
    }
    // hyper sends no body after a HEAD request's head, and keeps its Content-Length.
    Ok(reply(page(path).await))
}

fn reply((status, content_type, body): Page) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests;
