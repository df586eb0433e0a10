//! `barkctl build` on a fixture project with two tiny handler crates (`hello`,
//! `ping`) and a library crate: real cargo builds, real zips.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::harness::{self, Run};

/// A fresh copy of `tests/fixtures/build` (its own cargo workspace).
fn project() -> (tempfile::TempDir, PathBuf) {
    harness::copy_project(&harness::fixture("build"))
}

/// `barkctl build ARGS` in `dir`, with cargo's target dir pinned inside the copy
/// so an outer `CARGO_TARGET_DIR` cannot send these builds into barkctl's own.
fn build(dir: &Path, args: &[&str]) -> Run {
    let out = command(dir, args).output().expect("barkctl runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = harness::barkctl(dir);
    cmd.arg("build")
        .args(args)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("CARGO_BUILD_TARGET");
    cmd
}

fn zip_path(dir: &Path, krate: &str) -> PathBuf {
    dir.join("target/lambda").join(krate).join("bootstrap.zip")
}

/// The table row of `function` (`api.hello`), split on whitespace.
fn row<'a>(run: &'a Run, function: &str) -> Vec<&'a str> {
    run.stderr
        .lines()
        .find(|l| l.split_whitespace().next() == Some(function))
        .unwrap_or_else(|| panic!("no row for {function}:\n{}", run.stderr))
        .split_whitespace()
        .collect()
}

/// The single entry of a bundle: its name, unix mode and content.
fn entry(zip: &Path) -> (String, Option<u32>, Vec<u8>) {
    let file = std::fs::File::open(zip).expect("open zip");
    let mut archive = zip::ZipArchive::new(file).expect("read zip");
    assert_eq!(archive.len(), 1, "exactly one entry in {}", zip.display());
    let mut e = archive.by_index(0).expect("entry");
    let mut content = Vec::new();
    e.read_to_end(&mut content).expect("inflate");
    (
        e.name().expect("utf-8 name").to_string(),
        e.unix_mode(),
        content,
    )
}

#[test]
fn build_zips_each_handler_as_bootstrap_and_reuses_unchanged_bundles() {
    let (_tmp, dir) = project();

    let first = build(&dir, &[]);
    first.assert_ok();
    assert_eq!(first.stdout, "", "the table goes to stderr");
    let hello = row(&first, "api.hello");
    assert_eq!(hello[1], "hello");
    assert_eq!(hello.last(), Some(&"rebuilt"));
    assert_eq!(row(&first, "api.ping").last(), Some(&"rebuilt"));

    let zip = zip_path(&dir, "hello");
    let (name, mode, content) = entry(&zip);
    assert_eq!(name, "bootstrap");
    assert_eq!(mode.map(|m| m & 0o777), Some(0o755));
    let sha = hex::encode(Sha256::digest(&content));
    let recorded = std::fs::read_to_string(zip.with_file_name("bootstrap.sha256")).expect("sha");
    assert_eq!(
        recorded.trim(),
        sha,
        "the key is the hash of the zipped binary"
    );
    assert!(
        hello[2].len() == 12 && sha.starts_with(hello[2]),
        "{hello:?}"
    );
    // The zipped program is the handler that was built, not something else.
    assert!(
        content
            .windows(b"hello from a lambda".len())
            .any(|w| w == b"hello from a lambda"),
        "bootstrap is the hello binary"
    );

    let bytes = std::fs::read(&zip).expect("zip bytes");
    let mtime = std::fs::metadata(&zip)
        .and_then(|m| m.modified())
        .expect("mtime");

    let second = build(&dir, &[]);
    second.assert_ok();
    assert_eq!(row(&second, "api.hello").last(), Some(&"reused"));
    assert_eq!(row(&second, "api.ping").last(), Some(&"reused"));
    assert_eq!(std::fs::read(&zip).expect("zip bytes"), bytes);
    assert_eq!(
        std::fs::metadata(&zip)
            .and_then(|m| m.modified())
            .expect("mtime"),
        mtime,
        "an unchanged binary is not zipped again"
    );

    let quiet = build(&dir, &["--quiet"]);
    quiet.assert_ok();
    assert_eq!(quiet.stderr, "", "--quiet prints nothing but errors");

    harness::write(
        &dir.join("lambdas/hello/src/main.rs"),
        "fn main() {\n    println!(\"hello again\");\n}\n",
    );
    let third = build(&dir, &[]);
    third.assert_ok();
    let changed = row(&third, "api.hello");
    assert_eq!(changed.last(), Some(&"rebuilt"));
    assert!(
        !sha.starts_with(changed[2]),
        "new source, new hash: {changed:?}"
    );
    assert_eq!(row(&third, "api.ping").last(), Some(&"reused"));
    let (_, _, content) = entry(&zip);
    assert_ne!(hex::encode(Sha256::digest(&content)), sha);
}

#[test]
fn build_selects_functions_by_stack_key_or_crate() {
    let (_tmp, dir) = project();
    for name in ["api.ping", "ping"] {
        let run = build(&dir, &[name]);
        run.assert_ok();
        row(&run, "api.ping");
        assert!(
            !run.stderr.contains("api.hello"),
            "only ping was asked for:\n{}",
            run.stderr
        );
    }
    assert!(zip_path(&dir, "ping").is_file());
    assert!(!zip_path(&dir, "hello").exists(), "hello was not selected");
    // Yet it was compiled in the same cargo run: cargo unifies features across
    // the packages of one invocation, and a binary's hash must not depend on
    // which functions were asked for.
    let host = dir.join("target/release/hello");
    let cross = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
        .map(|t| dir.join("target").join(t).join("release/hello"));
    assert!(
        host.is_file() || cross.iter().any(|p| p.is_file()),
        "hello was built alongside ping"
    );
}

/// Regression: a host build with a profile named `lambda` (the default of cloud
/// stages in a workspace that defines it) put each binary at
/// `target/lambda/<crate>`, the path of the crate's bundle directory, and the
/// build failed with "File exists" (or cargo did, once the directory existed).
#[test]
fn a_host_build_with_the_lambda_profile_keeps_binaries_out_of_the_bundle_dirs() {
    let (_tmp, dir) = project();
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    harness::write(
        &manifest,
        &format!("{text}\n[profile.lambda]\ninherits = \"release\"\n"),
    );
    for round in ["first", "second"] {
        let run = build(&dir, &[]);
        run.assert_ok();
        assert!(zip_path(&dir, "hello").is_file(), "{round} build");
    }
    let (_, _, content) = entry(&zip_path(&dir, "hello"));
    let host = barkctl::toolchain::host_triple().expect("a linux host");
    let binary = std::fs::read(dir.join("target").join(host).join("lambda/hello")).expect("binary");
    assert_eq!(
        content, binary,
        "the bundle holds the lambda-profile binary"
    );
}

#[test]
fn build_of_an_unknown_function_exits_2_listing_the_known_ones() {
    let (_tmp, dir) = project();
    build(&dir, &["nope"]).assert_invalid(&[
        "unknown function `nope`",
        "api.hello (hello)",
        "api.ping (ping)",
    ]);
    build(&dir, &["other.hello"]).assert_invalid(&["unknown function `other.hello`"]);
    assert!(!dir.join("target").exists(), "nothing was built");
}

#[test]
fn build_of_a_library_crate_names_the_function_and_its_stack_file() {
    let (_tmp, dir) = project();
    harness::write(
        &dir.join("stacks/lib.yaml"),
        "template: api.yaml.hbs\nfunctions:\n  shared: { crate: shared }\n",
    );
    build(&dir, &["lib.shared"]).assert_invalid(&[
        "crate `shared`",
        "`lib.shared`",
        "stacks/lib.yaml",
        "no bin target",
    ]);
}

#[test]
fn build_shows_the_compile_error_as_cargo_prints_it_and_exits_3() {
    let (_tmp, dir) = project();
    harness::write(
        &dir.join("lambdas/hello/src/main.rs"),
        "fn main() {\n    let x: u32 = \"not a number\";\n}\n",
    );
    let run = build(&dir, &["hello"]);
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stderr.contains("error[E0308]: mismatched types"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("lambdas/hello/src/main.rs"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: `cargo build` failed"),
        "{}",
        run.stderr
    );
    assert!(!zip_path(&dir, "hello").exists());
}

#[test]
fn build_quiet_holds_back_compiler_warnings_but_not_errors() {
    let (_tmp, dir) = project();
    harness::write(
        &dir.join("lambdas/ping/src/main.rs"),
        "fn main() {\n    let unused = 1;\n    println!(\"pong\");\n}\n",
    );
    let quiet = build(&dir, &["ping", "--quiet"]);
    quiet.assert_ok();
    assert_eq!(quiet.stderr, "", "--quiet prints nothing but errors");
    harness::write(
        &dir.join("lambdas/ping/src/main.rs"),
        "fn main() { nope() }\n",
    );
    let failed = build(&dir, &["ping", "--quiet"]);
    assert_eq!(failed.code, 3, "{failed:#?}");
    assert!(failed.stderr.contains("error[E0425]"), "{}", failed.stderr);
    assert!(!failed.stderr.contains("Compiling"), "{}", failed.stderr);
}

/// What a cargo build in the workspace produced for each third-party crate
/// (registry package, by package id and target): the files, whose names carry
/// cargo's hash of the crate's features and profile. Fresh or compiled alike, so
/// the answer does not depend on what earlier builds left in the target dir.
fn third_party_artifacts(
    root: &Path,
    args: &[&str],
) -> std::collections::BTreeMap<String, Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .args(["--message-format=json", "--quiet"])
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            let id = m["package_id"].as_str()?;
            id.starts_with("registry+").then_some(())?;
            let files = m["filenames"]
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            Some((format!("{id} {}", m["target"]["name"]), files))
        })
        .collect()
}

/// Regression (issue 13, the first run took 605-711 s): `cargo run` builds barkctl
/// alone, then barkctl builds the local stage's handlers alone, and cargo resolves
/// features per invocation, so the handlers' build compiled most of the dependency
/// tree a second time with other features. `crates/workspace-hack` makes both ask
/// for the same features: every third-party crate of both builds must be the same
/// artifact, but aws-config, kept out of it on purpose (barkctl's `sso` feature).
/// The handlers' build is the one `barkctl deploy --stage local` runs (`--profile
/// dev`, one `-p` per function crate).
#[test]
fn a_local_stages_handler_build_reuses_the_dependencies_cargo_run_built_for_barkctl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let barkctl = third_party_artifacts(root, &["build", "--bin", "barkctl"]);
    let mut args = vec!["build", "--profile", "dev"];
    for krate in [
        "db-healthcheck",
        "jobs-migration",
        "jobs-property-archival",
        "jobs-property-deletion",
        "realtime-broadcast",
        "realtime-connect",
        "realtime-disconnect",
        "realtime-message",
        "realtime-sweeper",
        "stream-processor",
    ] {
        args.extend(["-p", krate]);
    }
    let handlers = third_party_artifacts(root, &args);
    let shared: Vec<&String> = handlers
        .keys()
        .filter(|k| barkctl.contains_key(*k))
        .collect();
    assert!(shared.len() > 100, "{shared:?}");
    let built_twice: Vec<&String> = shared
        .into_iter()
        .filter(|k| !k.contains("#aws-config@") && handlers[*k] != barkctl[*k])
        .collect();
    assert!(
        built_twice.is_empty(),
        "the handlers' build made its own copy of these dependencies of barkctl (run `cargo hakari generate` and `cargo hakari manage-deps`): {built_twice:?}"
    );
}
