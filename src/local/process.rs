//! The server process: spawn it detached, probe its HTTP endpoint, recognise it
//! in `/proc`, and stop it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{Endpoint, Error};

/// What answers on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET /moto-api/` answered 200.
    Moto,
    /// Something accepts connections there, but it is not a ready moto server.
    Other,
    /// Nothing listens.
    Closed,
}

/// One `GET /moto-api/` over a plain TCP connection: enough HTTP to read the
/// status line, without an HTTP client dependency for a loopback check.
pub fn probe(endpoint: &Endpoint) -> Probe {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&endpoint.socket_addr(), Duration::from_millis(500))
    else {
        return Probe::Closed;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(3)));
    let request = format!(
        "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        endpoint.port
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return Probe::Other;
    }
    let mut head = [0u8; 32];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/") => Probe::Moto,
        _ => Probe::Other,
    }
}

/// A live process (a zombie, which nobody reaped yet, counts as gone).
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: comm may hold spaces and parentheses, so the state
    // is the first field after the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

/// The arguments of a live process (`/proc/<pid>/cmdline`); `None` when it is gone.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    if !is_alive(pid) {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// What `moto.pid` holds. The script path and port identify our server in
/// `/proc/<pid>/cmdline`, so a recycled pid is never taken for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    pub pid: u32,
    pub port: u16,
    pub script: PathBuf,
}

/// `pid` is alive and is the launcher this record names, on the recorded port.
/// Pids are recycled: without this check `down` could signal a stranger.
pub fn is_our_server(pid: u32, record: &PidRecord) -> bool {
    let Some(args) = cmdline(pid) else {
        return false;
    };
    let script = record.script.to_string_lossy();
    let port = record.port.to_string();
    args.iter().any(|a| *a == script) && args.windows(2).any(|w| w[0] == "-p" && w[1] == port)
}

/// Start `python launcher -H 127.0.0.1 -p <port>` in its own process group (so a
/// Ctrl-C in the terminal that ran `barkctl` does not stop it), output to `log`.
pub fn spawn(python: &Path, script: &Path, port: u16, log: &Path) -> Result<Child, Error> {
    let io = |source| Error::Io {
        action: "open",
        path: log.to_path_buf(),
        source,
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    Command::new(python)
        .arg(script)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("PYTHONUNBUFFERED", "1")
        .process_group(0)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: python.display().to_string(),
            source,
        })
}

/// Best effort for a child that failed to become ready.
pub fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGTERM, wait up to 10 s, then SIGKILL. The pid is re-checked against the
/// record before each signal.
pub fn stop(pid: u32, record: &PidRecord) -> Result<(), Error> {
    for (signal, patience) in [
        (Signal::SIGTERM, Duration::from_secs(10)),
        (Signal::SIGKILL, Duration::from_secs(5)),
    ] {
        if !is_our_server(pid, record) {
            return Ok(());
        }
        send_signal(pid, signal)?;
        let started = Instant::now();
        while started.elapsed() < patience {
            if !is_alive(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if is_alive(pid) {
        return Err(Error::Stop {
            pid,
            detail: "it is still running after SIGKILL".into(),
        });
    }
    Ok(())
}

/// kill(2) through nix: no `kill` binary (minimal images lack procps) and no
/// shell. A process that is gone already is what we wanted.
fn send_signal(pid: u32, signal: Signal) -> Result<(), Error> {
    let Ok(raw) = i32::try_from(pid) else {
        return Err(Error::Stop {
            pid,
            detail: "not a process id".into(),
        });
    };
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) => Ok(()),
        Err(Errno::ESRCH) => Ok(()),
        Err(_) if !is_alive(pid) => Ok(()),
        Err(e) => Err(Error::Stop {
            pid,
            detail: format!("kill({signal:?}): {e}"),
        }),
    }
}
