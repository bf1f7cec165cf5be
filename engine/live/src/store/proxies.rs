//! Proxies: recorded from the config or a purchase, listed with their passwords decrypted,
//! marked dead, and rested outside a lease.

use std::net::IpAddr;

use rotor_engine::ProxyId;

use super::error::{Abort, ctx};
use super::sql::{Dialect, Value};
use super::{NewProxy, Store, StoreError, StoredProxy, int, opt_uint, text, uint};

impl Store {
    /// The highest `[workers] config_version` whose proxy list a worker applied (0: none).
    pub fn proxy_list_version(&mut self) -> Result<u64, StoreError> {
        let rows = self
            .conn
            .query("SELECT value FROM rotor_meta WHERE key = 'proxy_list_version'", &[])
            .map_err(ctx("read the proxy list's version"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)))
    }

    /// Records that a worker applies the proxy list of `version`, unless a higher one was
    /// applied; returns the highest applied, after this call.
    pub fn raise_proxy_list_version(&mut self, version: u64) -> Result<u64, StoreError> {
        self.tx(|c| {
            c.exec(
                "INSERT INTO rotor_meta (key, value) VALUES ('proxy_list_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE rotor_meta.value < excluded.value",
                &[version.into()],
            )?;
            let rows = c.query("SELECT value FROM rotor_meta WHERE key = 'proxy_list_version'", &[])?;
            Ok(rows.first().map_or(0, |r| uint(r, 0)))
        })
        .map_err(ctx("record the proxy list's version"))
    }

    /// Records a proxy (from the config or a purchase) and returns its id. A proxy is known by
    /// its identity, not its URL: Proxy6's id for a bought one, the egress IP for a configured
    /// one. A known proxy keeps its id, state, rests and budget, and takes the new URL and login
    /// (a new port from the provider, `localhost` written for `127.0.0.1`). When several rows
    /// share the identity (a store written before this rule), the live one, else the newest,
    /// is it. A URL another proxy's row holds is taken from that row (which keeps its id, with
    /// the URL marked `#pN`), so a URL reused for another egress IP is a new proxy. Ids are
    /// dense: the next is the row count. Nothing is revived here.
    pub fn upsert_proxy(&mut self, p: &NewProxy<'_>, now_ms: u64) -> Result<ProxyId, StoreError> {
        let sealed: Value = match p.password {
            Some(s) => Some(self.cipher("record a proxy")?.seal(s.expose())),
            None => None,
        }
        .into();
        let NewProxy { url, username, egress_ip, source, proxy6, .. } = *p;
        let id = self
            .tx(|c| {
                if c.dialect() == Dialect::Postgres {
                    c.batch("LOCK TABLE proxies IN SHARE ROW EXCLUSIVE MODE")?;
                }
                let found = match proxy6 {
                    Some((pid, _)) => c.query(
                        "SELECT id FROM proxies WHERE proxy6_id = $1 ORDER BY dead, id DESC LIMIT 1",
                        &[pid.into()],
                    )?,
                    None => c.query(
                        "SELECT id FROM proxies WHERE source = 'config' AND egress_ip = $1 ORDER BY dead, id DESC LIMIT 1",
                        &[egress_ip.to_string().into()],
                    )?,
                };
                let known = found.first().map(|r| int(r, 0));
                let id = match known {
                    Some(id) => id,
                    None => c.query("SELECT COUNT(*) FROM proxies", &[])?.first().map_or(0, |r| int(r, 0)),
                };
                // The URL is unique: a row of another identity that holds it lets it go.
                c.exec(
                    "UPDATE proxies SET url = url || '#p' || CAST(id AS TEXT) WHERE url = $1 AND id <> $2",
                    &[url.into(), id.into()],
                )?;
                if known.is_some() {
                    c.exec(
                        "UPDATE proxies SET url = $1, username = $2, password_enc = $3, egress_ip = $4 WHERE id = $5",
                        &[url.into(), username.into(), sealed, egress_ip.to_string().into(), id.into()],
                    )?;
                    return Ok(id);
                }
                c.exec(
                    "INSERT INTO proxies (id, url, username, password_enc, egress_ip, source, proxy6_id, expires_ms, added_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        id.into(),
                        url.into(),
                        username.into(),
                        sealed,
                        egress_ip.to_string().into(),
                        source.into(),
                        proxy6.map(|p| p.0).into(),
                        proxy6.map(|p| p.1).into(),
                        now_ms.into(),
                    ],
                )?;
                c.exec("INSERT INTO proxy_state (proxy_id) VALUES ($1)", &[id.into()])?;
                Ok(id)
            })
            .map_err(ctx("record a proxy"))?;
        Ok(ProxyId(id as u32))
    }

    /// Proxies with ids from `from` on, in id order, passwords decrypted.
    pub fn proxies_from(&mut self, from: u32) -> Result<Vec<StoredProxy>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT p.id, p.url, p.username, p.password_enc, p.egress_ip, p.dead, s.lease_open, s.lease_no,
                        s.rest_until_ms, p.expires_ms, p.dead_reason, s.held_until_ms
                 FROM proxies p JOIN proxy_state s ON s.proxy_id = p.id WHERE p.id >= $1 ORDER BY p.id",
                &[from.into()],
            )
            .map_err(ctx("list proxies"))?;
        rows.iter()
            .map(|r| {
                // Without the key (a view), no password is read: it shows none anyway.
                let password = match (text(r, 3), &self.cipher) {
                    (Some(sealed), Some(cipher)) => Some(
                        cipher
                            .open(&sealed)
                            .map_err(|e| Abort::Corrupt(e.to_string()).during("decrypt a proxy password"))?,
                    ),
                    _ => None,
                };
                let egress = text(r, 4).unwrap_or_default();
                let egress_ip: IpAddr = egress.parse().map_err(|_| {
                    Abort::Corrupt(format!("proxy {} has egress IP {egress:?}", uint(r, 0)))
                        .during("list proxies")
                })?;
                Ok(StoredProxy {
                    id: ProxyId(uint(r, 0) as u32),
                    url: text(r, 1).unwrap_or_default(),
                    username: text(r, 2),
                    password,
                    egress_ip,
                    dead: int(r, 5) != 0,
                    lease_open: int(r, 6) != 0,
                    lease_no: uint(r, 7) as u32,
                    rest_until_ms: uint(r, 8),
                    expires_ms: opt_uint(r, 9),
                    dead_reason: text(r, 10),
                    held_until_ms: uint(r, 11),
                })
            })
            .collect()
    }

    /// Every proxy, in id order.
    pub fn proxies(&mut self) -> Result<Vec<StoredProxy>, StoreError> {
        self.proxies_from(0)
    }

    /// Marks a proxy dead, with the reason; one already dead keeps its first reason (an
    /// operator's retirement, say, is not renamed by the engine's echo of it).
    pub fn mark_dead(&mut self, id: ProxyId, reason: &str) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE proxies SET dead_reason = CASE WHEN dead = 1 AND dead_reason IS NOT NULL THEN dead_reason ELSE $1 END,
                 dead = 1 WHERE id = $2",
                &[reason.into(), id.0.into()],
            )
            .map(|_| ())
            .map_err(ctx("mark proxy dead"))
    }
}
