//! The status endpoint, on loopback by default: `GET /health/proxies` (the seed's JSON: pool
//! counts by status, users with proxies, per-module allocation, and each lane's current proxy)
//! and `GET /metrics` (Prometheus text). Nothing here can reach a secret: it reads ids, counts
//! and states only.

use std::collections::BTreeMap;
use std::sync::Arc;

use rotor_engine::{Engine, LaneKey, Module, ProxyId, ProxyState};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::clock;
use super::driver::Driver;

/// The `/health/proxies` document.
pub fn health(engine: &Engine) -> serde_json::Value {
    let now = clock::now();
    let (mut allocated, mut resting, mut dead) = (0, 0, 0);
    let mut per_module = [0u32; 4];
    let mut users: BTreeMap<u32, [u32; 4]> = BTreeMap::new();
    for i in 0..engine.proxy_count() {
        let Some(p) = engine.proxy(ProxyId(i)) else { continue };
        match p.state {
            ProxyState::Dead => dead += 1,
            ProxyState::Resting { ready_at } if ready_at > now => resting += 1,
            _ => {}
        }
        if let Some(lane) = p.lane {
            allocated += 1;
            per_module[lane.module.index()] += 1;
            users.entry(lane.user.0).or_default()[lane.module.index()] += 1;
        }
    }
    let user_rows: Vec<serde_json::Value> = users
        .iter()
        .map(|(&u, counts)| {
            let lanes: serde_json::Map<String, serde_json::Value> = Module::ALL
                .iter()
                .filter_map(|&m| {
                    let lane = engine.lane(LaneKey::new(rotor_engine::UserId(u), m))?;
                    let current =
                        lane.current.and_then(|id| engine.proxy(id).map(|p| (id, p.lease_requests)));
                    Some((
                        m.name().to_owned(),
                        json!({
                            "proxies": counts[m.index()],
                            "dead": lane.dead,
                            "current_proxy": current.map(|(id, _)| id.0),
                            "requests_on_current": current.map_or(0, |(_, n)| n),
                        }),
                    ))
                })
                .collect();
            json!({ "user": u, "proxies_used": counts.iter().sum::<u32>(), "lanes": lanes })
        })
        .collect();
    let n_users = users.len() as u32;
    json!({
        "proxy_pool": {
            "total": engine.proxy_count(),
            "available": engine.available(),
            "allocated": allocated,
            "resting": resting,
            "dead": dead,
        },
        "users_with_proxies": n_users,
        "average_proxies_per_user": if n_users == 0 { 0.0 } else { f64::from(allocated) / f64::from(n_users) },
        "per_module_allocation": {
            "demper": per_module[0], "orders": per_module[1], "catalog": per_module[2], "reserve": per_module[3],
        },
        "users": user_rows,
    })
}

/// Serves until shutdown.
pub async fn serve(listener: TcpListener, driver: Arc<Driver>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let driver = Arc::clone(&driver);
                    tokio::spawn(async move { let _ = answer(stream, &driver).await; });
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn answer(mut stream: TcpStream, driver: &Driver) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read).await.map_err(std::io::Error::other)??;
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/health/proxies") => {
            let doc = driver.view(health);
            ("200 OK", "application/json", format!("{doc:#}\n"))
        }
        ("GET", "/metrics") => {
            let (dead, available) = driver.view(|e| {
                let dead = (0..e.proxy_count())
                    .filter(|&i| e.proxy(ProxyId(i)).is_some_and(|p| p.state == ProxyState::Dead))
                    .count() as u32;
                (dead, e.available())
            });
            ("200 OK", "text/plain; version=0.0.4", driver.metrics.render(dead, available))
        }
        ("GET", _) => {
            ("404 Not Found", "text/plain", "not found; try /health/proxies or /metrics\n".to_owned())
        }
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
