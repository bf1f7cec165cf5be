//! A PostgreSQL database for one test: a fresh database on the server `ROTOR_TEST_PG_URL` names
//! (CI starts one on loopback), or else a throwaway server of our own on a free loopback port,
//! started from the installed PostgreSQL binaries and stopped when the test ends.

use std::path::PathBuf;
use std::process::Command;

/// On a server of our own, the role that must give a password (`scram-sha-256`).
#[allow(dead_code)]
pub(crate) const PASSWORD_ROLE: &str = "rotor_pw";

/// A database that exists while this value lives.
pub(crate) struct TestDb {
    /// Its URL.
    pub(crate) url: String,
    cluster: Option<PathBuf>,
    admin: Option<(String, String)>,
    /// The server's start options, when the server is ours.
    opts: String,
}

fn bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter().rev().map(|d| d.join(name)).find(|p| p.exists()).unwrap_or_else(|| PathBuf::from(name))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (the server refuses root).
fn pg(program: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin(program));
        c
    } else {
        Command::new(bin(program))
    };
    cmd.args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program}: {e}; install PostgreSQL (apt-get install postgresql) or set ROTOR_TEST_PG_URL")
    })
}

/// Runs one statement on the server, from a thread of its own: the synchronous client starts a
/// runtime, which must not happen inside a tokio test's.
fn admin(server: &str, sql: &str) -> Result<(), String> {
    let (server, sql) = (server.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&server, postgres::NoTls)
            .map_err(|e| format!("cannot connect: {e}"))?;
        c.batch_execute(&sql).map_err(|e| format!("{sql}: {e}"))
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_owned())?
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestDb {
    /// A fresh, empty database named after `name`.
    #[allow(dead_code)] // not every test binary shares the server
    pub(crate) fn new(name: &str) -> TestDb {
        Self::create(name, std::env::var("ROTOR_TEST_PG_URL").ok())
    }

    /// A database on a server of its own, which the test may stop and start.
    #[allow(dead_code)] // not every test binary restarts its server
    pub(crate) fn own_server(name: &str) -> TestDb {
        Self::create(name, None)
    }

    /// Runs `sql` on the database as its administrator.
    #[allow(dead_code)]
    pub(crate) fn admin(&self, sql: &str) {
        admin(&self.url, sql).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops its server at once (as a crash or a failover would).
    #[allow(dead_code)]
    pub(crate) fn stop(&self) {
        let dir = self.cluster.as_ref().expect("own_server").to_str().unwrap();
        let out = pg("pg_ctl", &["-D", dir, "-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts its server again, on the same port.
    #[allow(dead_code)]
    pub(crate) fn start(&self) {
        let dir = self.cluster.as_ref().expect("own_server").to_str().unwrap();
        let log = format!("{dir}/server.log");
        let out = pg("pg_ctl", &["-D", dir, "-o", &self.opts, "-l", &log, "-w", "start"]);
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn create(name: &str, server: Option<String>) -> TestDb {
        let db = format!("rotor_{name}_{}", std::process::id());
        if let Some(server) = server {
            admin(&server, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .and_then(|()| admin(&server, &format!("CREATE DATABASE {db}")))
                .unwrap_or_else(|e| panic!("ROTOR_TEST_PG_URL={server}: {e}"));
            let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b).to_owned();
            return TestDb {
                url: format!("{base}/{db}"),
                cluster: None,
                admin: Some((server, db)),
                opts: String::new(),
            };
        }
        let dir = std::env::temp_dir().join(format!("rotor-pg-{db}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(Command::new("chown").arg("postgres").arg(&dir).status().unwrap().success());
        }
        let d = dir.to_str().unwrap();
        let init = pg("initdb", &["-D", d, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        assert!(init.status.success(), "initdb failed: {}", String::from_utf8_lossy(&init.stderr));
        // The role `rotor_pw` must give its password (the others are trusted): what a test of
        // the store's password needs.
        let hba = dir.join("pg_hba.conf");
        let trusted = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n{trusted}"))
            .unwrap();
        let port = free_port();
        let opts = format!("-h 127.0.0.1 -p {port} -k {d} -c fsync=off -c max_connections=60");
        let log = format!("{d}/server.log");
        let start = pg("pg_ctl", &["-D", d, "-o", &opts, "-l", &log, "-w", "start"]);
        assert!(start.status.success(), "pg_ctl start failed: {}", String::from_utf8_lossy(&start.stderr));
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            cluster: Some(dir),
            admin: None,
            opts,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.cluster {
            let _ = pg("pg_ctl", &["-D", dir.to_str().unwrap_or(""), "-m", "immediate", "-w", "stop"]);
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((server, db)) = &self.admin {
            let _ = admin(server, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}
