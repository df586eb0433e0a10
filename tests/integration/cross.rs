//! An arm64 bundle built on this x86_64 machine (issue 13): `cargo zigbuild`
//! for `aarch64-unknown-linux-gnu.2.34`, so glibc 2.34 (provided.al2023's) is the
//! ceiling the link uses. Only the ticker example's crate is built (small), with
//! the dev profile (the test checks the bundle, not its speed).
//!
//! Needs the cross tools in the tools venv (`scripts/test.sh` installs the pins
//! of `.ci/requirements.txt`; barkctl installs them itself when missing) and
//! rustup (barkctl adds the target). The qemu part runs where `qemu-aarch64`
//! and the aarch64 glibc (Debian: `qemu-user`, `libc6-arm64-cross`) exist.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object::Object;

use super::harness::{self, Run};

fn ticker() -> PathBuf {
    harness::repo_root().join("examples/ticker")
}

/// `barkctl build --stage dev tick` of the ticker example into `target`.
fn build_arm64(target: &Path) -> Run {
    let out = harness::barkctl(&harness::repo_root())
        .arg("--project")
        .arg(ticker())
        .args(["build", "--stage", "dev", "tick"])
        .env("CARGO_TARGET_DIR", target)
        .env("BARKCTL_CARGO_PROFILE", "dev")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("barkctl runs");
    Run::from(out)
}

fn bootstrap_of(zip: &Path) -> Vec<u8> {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(zip).expect("open zip")).expect("read zip");
    let mut e = archive.by_name("bootstrap").expect("bootstrap entry");
    let mut content = Vec::new();
    e.read_to_end(&mut content).expect("inflate");
    content
}

#[test]
fn an_arm64_bundle_is_cross_built_against_glibc_2_34_reproducibly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let target = tmp.path().join("target");
    let first = build_arm64(&target);
    first.assert_ok();
    let row: Vec<&str> = first
        .stderr
        .lines()
        .find(|l| l.starts_with("clock.tick"))
        .unwrap_or_else(|| panic!("no row:\n{}", first.stderr))
        .split_whitespace()
        .collect();
    // FUNCTION CRATE SHA256 ZIP(2 words) ARCH GLIBC BUNDLE
    assert_eq!(row[5], "arm64", "{row:?}");
    let (major, minor) = row[6].split_once('.').expect("a glibc version");
    let glibc: (u32, u32) = (major.parse().expect("n"), minor.parse().expect("n"));
    assert!(glibc <= (2, 34), "needs GLIBC_{}.{}", glibc.0, glibc.1);

    let zip = target.join("lambda/ticker-tick/bootstrap.zip");
    let bytes = std::fs::read(&zip).expect("zip");
    let bin = bootstrap_of(&zip);
    let elf = object::File::parse(&*bin).expect("an ELF");
    assert_eq!(elf.architecture(), object::Architecture::Aarch64);

    // A second clean build gives the same bytes.
    std::fs::remove_dir_all(&target).expect("clean");
    build_arm64(&target).assert_ok();
    assert!(
        std::fs::read(&zip).expect("zip") == bytes,
        "two clean builds gave different zips"
    );

    let qemu = Path::new("/usr/bin/qemu-aarch64");
    let sysroot = Path::new("/usr/aarch64-linux-gnu");
    if qemu.is_file() && sysroot.join("lib/ld-linux-aarch64.so.1").exists() {
        starts_under_qemu(tmp.path(), &bin, qemu, sysroot);
    } else {
        println!("qemu-aarch64 or the aarch64 glibc is missing: not started");
    }
}

/// The binary under qemu reaches its first `GET .../invocation/next` on a
/// runtime API listener.
fn starts_under_qemu(dir: &Path, bin: &[u8], qemu: &Path, sysroot: &Path) {
    let exe = dir.join("bootstrap");
    std::fs::write(&exe, bin).expect("write");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .arg("-L")
        .arg(sysroot)
        .arg(&exe)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "ticker-dev-clock-tick")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/ticker-dev-clock-tick",
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "qemu")
        .stdin(Stdio::null())
        .spawn()
        .expect("qemu starts");
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = started + Duration::from_secs(30);
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                panic!("no connection from the arm64 binary in 30 s: {e}");
            }
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = [0u8; 256];
    let n = conn.read(&mut head).unwrap_or(0);
    let request = String::from_utf8_lossy(&head[..n]).into_owned();
    println!(
        "arm64 bootstrap under qemu reached its first request in {} ms",
        started.elapsed().as_millis()
    );
    let _ = conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        request.starts_with("GET /2018-06-01/runtime/invocation/next "),
        "{request}"
    );
}
