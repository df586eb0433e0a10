//! A moto server on a free 127.0.0.1 port, killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{free_port, on_path, repo_root};

pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

/// `$BARKCTL_TOOLS_VENV/bin/moto_server`, else the repo's venv, else PATH.
fn moto_binary() -> PathBuf {
    let candidates = [
        std::env::var_os("BARKCTL_TOOLS_VENV").map(|v| PathBuf::from(v).join("bin/moto_server")),
        Some(repo_root().join(".barkctl/local/venv/bin/moto_server")),
        on_path("moto_server"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .expect("moto_server not found: run `bash scripts/test.sh` (it prepares the tools venv)")
}

impl MotoServer {
    pub fn start() -> MotoServer {
        let port = free_port();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server not ready within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// A Secrets Manager client for this server (any credentials, us-east-1).
    pub async fn secrets_client(&self) -> aws_sdk_secretsmanager::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "jobs-tests",
            ))
            .load()
            .await;
        aws_sdk_secretsmanager::Client::new(&config)
    }
}

/// `GET /moto-api/` answers 200 once the server is up.
fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
