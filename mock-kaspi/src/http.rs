//! A small HTTP/1.1 server for the fake Kaspi, on the caller's tokio runtime: every request is
//! answered by one handler, with the answer's delay slept on the connection's own task.
//!
//! wiremock served the fake before; it keeps a copy of every matched request for verification,
//! which grew to gigabytes and a third of the CPU in a load run (docs/performance.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A request as the handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The full URL (`http://127.0.0.1:port/path?query`).
    pub(crate) url: url::Url,
    /// The method.
    pub(crate) method: hyper::Method,
    /// The headers.
    pub(crate) headers: hyper::HeaderMap,
    /// The whole body.
    pub(crate) body: Vec<u8>,
}

/// An answer: status, headers, body, and how long to wait before sending it.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Option<Duration>,
}

impl Reply {
    /// An empty answer with `status`.
    pub(crate) fn new(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: Vec::new(), delay: None }
    }

    /// A JSON body.
    #[must_use]
    pub(crate) fn set_body_json(self, body: impl serde::Serialize) -> Self {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        self.set_body_raw(bytes, "application/json")
    }

    /// The JSON body changed by `f` (a body that is not JSON is left as it is).
    #[must_use]
    pub(crate) fn map_json(mut self, f: impl FnOnce(&mut serde_json::Value)) -> Self {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            f(&mut v);
            self.body = serde_json::to_vec(&v).unwrap_or_default();
        }
        self
    }

    /// A body with its media type.
    #[must_use]
    pub(crate) fn set_body_raw(mut self, body: impl Into<Vec<u8>>, mime: &str) -> Self {
        self.body = body.into();
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        self.headers.push(("Content-Type".into(), mime.into()));
        self
    }

    /// Sets a header.
    #[must_use]
    pub(crate) fn insert_header(mut self, key: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.headers.push((key.into(), value.into()));
        self
    }

    /// Waits this long before answering.
    #[must_use]
    pub(crate) fn set_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    fn into_response(self) -> hyper::Response<Full<Bytes>> {
        let mut response = hyper::Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() =
            hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) =
                (hyper::header::HeaderName::try_from(k), hyper::header::HeaderValue::try_from(v))
            {
                response.headers_mut().insert(k, v);
            }
        }
        response
    }
}

/// What answers every request.
pub(crate) type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running server on a random loopback port. Dropping it stops it and its connections.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Starts serving `handler` on 127.0.0.1.
    pub(crate) async fn start(handler: Handler) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept(listener, addr, handler, stopped));
        Ok(Server { addr, stop, task })
    }

    /// The base URL, such as `http://127.0.0.1:41234`.
    pub(crate) fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, addr: SocketAddr, handler: Handler, stopped: watch::Receiver<bool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (handler, mut stopped) = (Arc::clone(&handler), stopped.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(Arc::clone(&handler), addr, req));
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
    }
}

async fn answer(
    handler: Handler,
    addr: SocketAddr,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let Ok(url) = url::Url::parse(&format!("http://{addr}{path}")) else {
        return Ok(Reply::new(400).into_response());
    };
    let request = Request { url, method: parts.method, headers: parts.headers, body };
    let reply = handler(&request);
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    Ok(reply.into_response())
}
