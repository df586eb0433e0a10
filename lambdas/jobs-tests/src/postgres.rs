//! A PostgreSQL server for tests: a throwaway cluster (initdb in a temp dir, a
//! free 127.0.0.1 port, its unix socket in the temp dir too), stopped with
//! `pg_ctl stop -m immediate` when dropped; or the server of `DATABASE_URL`.
//!
//! initdb refuses to run as root, and tests run as root here and in CI: then the
//! cluster runs as the `postgres` OS user (which Debian's `postgresql` package
//! creates; `nobody` otherwise) through `runuser`, with the temp dir chowned to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use crate::tools::{command_output, free_port, on_path};

const ADMIN_USER: &str = "barkbase_admin";

#[derive(Debug, Clone, Copy, Default)]
pub struct PgOptions {
    /// Keep fsync and synchronous commit (benchmarks); tests turn them off for speed.
    pub durable: bool,
    /// Serve TLS with a certificate for `localhost`/127.0.0.1 signed by a fresh CA.
    pub tls: bool,
}

/// Where a test database lives and how to log in.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
}

impl TestDb {
    /// URL for `DATABASE_URL` (tokio-postgres syntax; no TLS).
    pub fn url(&self) -> String {
        format!(
            "postgresql://{}:{}@{}:{}/{}?sslmode=disable",
            self.user, self.password, self.host, self.port, self.dbname
        )
    }

    /// A direct connection for setting up and checking rows.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.dbname));
        tokio::spawn(connection);
        client
    }
}

pub struct PgServer {
    admin: TestDb,
    cluster: Option<Cluster>,
    databases: AtomicUsize,
    /// CA certificate (PEM) that signed the server certificate, when TLS is on.
    pub ca_cert: Option<PathBuf>,
}

struct Cluster {
    // Dropped after `Drop for PgServer` has stopped the server.
    _dir: TempDir,
    data: PathBuf,
    pg_ctl: PathBuf,
    run_as: Option<String>,
}

impl PgServer {
    /// The server of `DATABASE_URL` when set, else a throwaway cluster.
    pub fn start() -> PgServer {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => PgServer::external(&url),
            _ => PgServer::cluster(PgOptions::default()),
        }
    }

    fn external(url: &str) -> PgServer {
        let config: tokio_postgres::Config = url.parse().expect("DATABASE_URL parses");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        PgServer {
            admin: TestDb {
                host,
                port: config.get_ports().first().copied().unwrap_or(5432),
                user: config.get_user().unwrap_or("postgres").to_owned(),
                password,
                dbname: config.get_dbname().unwrap_or("postgres").to_owned(),
            },
            cluster: None,
            databases: AtomicUsize::new(0),
            ca_cert: None,
        }
    }

    /// Always a new cluster (initdb + pg_ctl start).
    pub fn cluster(options: PgOptions) -> PgServer {
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("barkctl-pg-")
            .tempdir()
            .expect("temp dir");
        let run_as = server_user();
        let password = format!("pw{}x{}", std::process::id(), free_port());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).expect("write pwfile");
        let data = dir.path().join("data");
        let ca_cert = options.tls.then(|| make_certificates(dir.path()));
        if let Some(user) = &run_as {
            chown_tree(dir.path(), user);
        }
        let mut initdb = server_command(&bin.join("initdb"), run_as.as_deref());
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ADMIN_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
                "--no-instructions",
            ])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()));
        check("initdb", initdb.output());

        let mut cluster = Cluster {
            _dir: dir,
            data,
            pg_ctl: bin.join("pg_ctl"),
            run_as,
        };
        // The port is free when picked but could be taken before postgres binds
        // it (parallel tests): retry with another.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            match cluster.start(port, options) {
                Ok(()) => {
                    return PgServer {
                        admin: TestDb {
                            host: "127.0.0.1".into(),
                            port,
                            user: ADMIN_USER.into(),
                            password,
                            dbname: "postgres".into(),
                        },
                        cluster: Some(cluster),
                        databases: AtomicUsize::new(0),
                        ca_cert,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        cluster.stop();
        panic!("postgres did not start: {last_error}");
    }

    pub fn admin(&self) -> &TestDb {
        &self.admin
    }

    /// A new, empty database on this server (unique per process and call).
    pub async fn create_database(&self) -> TestDb {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let dbname = format!("jobs_test_{}_{n}", std::process::id());
        let admin = self.admin.connect().await;
        // Two calls: one multi-statement query would be an implicit transaction,
        // which these commands refuse.
        for sql in [
            format!("DROP DATABASE IF EXISTS {dbname}"),
            format!("CREATE DATABASE {dbname}"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .expect("create test database");
        }
        TestDb {
            dbname,
            ..self.admin.clone()
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            cluster.stop();
        }
    }
}

impl Cluster {
    fn start(&mut self, port: u16, options: PgOptions) -> Result<(), String> {
        let socket_dir = self
            .data
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .to_path_buf();
        let mut server_options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=50",
            socket_dir.display()
        );
        if !options.durable {
            server_options
                .push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        if options.tls {
            server_options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                socket_dir.display()
            ));
        }
        let log = socket_dir.join("postgres.log");
        let mut start = server_command(&self.pg_ctl, self.run_as.as_deref());
        start.arg("-D").arg(&self.data).arg("-l").arg(&log).args([
            "-w",
            "-t",
            "60",
            "-o",
            &server_options,
            "start",
        ]);
        match start.output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "pg_ctl start: {}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
            Err(e) => Err(format!("pg_ctl start: {e}")),
        }
    }

    fn stop(&mut self) {
        let _ = server_command(&self.pg_ctl, self.run_as.as_deref())
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The OS user to run the server as: none unless we are root.
fn server_user() -> Option<String> {
    if command_output("id", &["-u"]).as_deref() != Some("0") {
        return None;
    }
    ["postgres", "nobody"]
        .into_iter()
        .find(|u| command_output("id", &["-u", u]).is_some())
        .map(str::to_owned)
        .or_else(|| panic!("running as root, but neither a `postgres` nor a `nobody` user exists"))
}

fn server_command(program: &Path, run_as: Option<&str>) -> Command {
    match run_as {
        Some(user) => {
            // CI's PATH may lack /usr/sbin, where util-linux puts runuser.
            let runuser = on_path("runuser")
                .or_else(|| {
                    ["/usr/sbin/runuser", "/sbin/runuser"]
                        .into_iter()
                        .map(PathBuf::from)
                        .find(|p| p.is_file())
                })
                .unwrap_or_else(|| PathBuf::from("runuser"));
            let mut cmd = Command::new(runuser);
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn chown_tree(dir: &Path, user: &str) {
    let uid: u32 = command_output("id", &["-u", user])
        .and_then(|s| s.parse().ok())
        .expect("uid");
    let gid: u32 = command_output("id", &["-g", user])
        .and_then(|s| s.parse().ok())
        .expect("gid");
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown test dir");
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read test dir") {
                stack.push(entry.expect("dir entry").path());
            }
        }
    }
}

/// initdb's directory: from PATH (symlinks resolved), else the newest
/// /usr/lib/postgresql/<version>/bin (Debian does not put it on PATH).
fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = on_path("initdb")
        .and_then(|p| p.canonicalize().ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL server binaries not found (install Debian's `postgresql` package)")
}

fn openssl(dir: &Path, args: &[&str]) {
    check(
        "openssl",
        Command::new("openssl").current_dir(dir).args(args).output(),
    )
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A self-signed CA (`ca.key`, `ca.crt`) in `dir`; returns the certificate's path.
pub fn make_ca(dir: &Path) -> PathBuf {
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC_KEY,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=jobs-tests CA",
            ],
        ]
        .concat(),
    );
    dir.join("ca.crt")
}

/// A CA and a server certificate for localhost/127.0.0.1, made with the openssl
/// CLI (Debian's postgresql package pulls it in through ssl-cert).
fn make_certificates(dir: &Path) -> PathBuf {
    let run = |args: &[&str]| openssl(dir, args);
    let ec = EC_KEY;
    make_ca(dir);
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write server.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    // postgres refuses a key readable by others.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod server.key");
    dir.join("ca.crt")
}

fn check(what: &str, result: std::io::Result<Output>) {
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{what} could not run: {e}"),
    }
}
