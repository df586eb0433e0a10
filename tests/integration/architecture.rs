//! Declared architecture: what `synth` renders for `Architectures` comes from the
//! stack files alone, never from the machine. Regression tests for issue 13:
//! `architecture: auto` rendered `x86_64` on one machine and `arm64` on another
//! (synth ran `rustc -vV` and `rustc --print sysroot`), so `diff --fail` in CI
//! flipped with the runner.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::harness::{self, Run};

/// `barkctl synth --stage STAGE --out OUT` with `PATH` set to `path`; the
/// written files by name -> bytes.
fn synth(dir: &Path, stage: &str, path: &str, extra: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    let out = dir.join(format!("out-{}", extra.len() + path.len()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = harness::barkctl(dir);
    cmd.args(["synth", "--stage", stage, "--out"])
        .arg(&out)
        .env("PATH", path);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let run = Run::from(cmd.output().expect("barkctl runs"));
    run.assert_ok();
    std::fs::read_dir(&out)
        .expect("out dir")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read template"),
            )
        })
        .collect()
}

/// Every function's `Architectures` in the written templates: `LogicalId` -> value.
fn architectures(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for bytes in files.values() {
        let t: Value = serde_json::from_slice(bytes).expect("template is JSON");
        let Some(resources) = t["Resources"].as_object() else {
            continue;
        };
        for (id, r) in resources {
            if r["Type"] == "AWS::Lambda::Function" {
                let arch = r["Properties"]["Architectures"][0]
                    .as_str()
                    .unwrap_or_default();
                out.insert(id.clone(), arch.to_string());
            }
        }
    }
    out
}

/// A folder of executables named like the tools synth used to run (and the
/// ones a cross build uses); each one records that it ran in `ran.log`.
fn tripwires(dir: &Path) -> PathBuf {
    let bin = dir.join("tripwire-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for tool in [
        "rustc",
        "cargo",
        "rustup",
        "cargo-zigbuild",
        "zig",
        "aarch64-linux-gnu-gcc",
    ] {
        let p = bin.join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho {tool} >> '{}'\nexit 1\n",
                bin.join("ran.log").display()
            ),
        )
        .expect("write tripwire");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    bin
}

#[test]
fn synth_dev_is_byte_identical_without_path_with_cross_tools_and_as_usual() {
    let (_tmp, dir) = harness::copy_barkbase();
    let inherited = std::env::var("PATH").unwrap_or_default();

    // No process can be spawned by name with PATH empty, and RUSTC points nowhere.
    let bare = synth(&dir, "dev", "", &[("RUSTC", "/nonexistent/rustc")]);
    assert_eq!(bare.len(), 5, "{:?}", bare.keys());

    // A machine that "has" zig, cargo-zigbuild and an aarch64 gcc: synth must not
    // even look (each tool logs that it ran).
    let bin = tripwires(&dir);
    let cross = synth(&dir, "dev", bin.to_str().expect("utf-8"), &[]);
    assert!(
        !bin.join("ran.log").exists(),
        "synth ran {}",
        std::fs::read_to_string(bin.join("ran.log")).unwrap_or_default()
    );

    let usual = synth(&dir, "dev", &inherited, &[]);
    assert_eq!(bare, cross, "templates differ with cross tools on PATH");
    assert_eq!(bare, usual, "templates differ with the inherited PATH");

    let archs = architectures(&bare);
    assert_eq!(archs.len(), 10, "BarkBase has ten functions: {archs:?}");
    assert!(
        archs.values().all(|a| a == "arm64"),
        "the project default is arm64: {archs:?}"
    );
}

#[test]
fn validate_spawns_no_process_either() {
    let (_tmp, dir) = harness::copy_barkbase();
    let run = Run::from(
        harness::barkctl(&dir)
            .args(["validate"])
            .env("PATH", "")
            .env("RUSTC", "/nonexistent/rustc")
            .output()
            .expect("barkctl runs"),
    );
    run.assert_ok();
    assert!(run.stderr.contains("dev: 5 stacks"), "{}", run.stderr);
}

#[test]
fn a_local_stage_renders_the_host_architecture() {
    let (_tmp, dir) = harness::copy_barkbase();
    let local = synth(&dir, "local", "", &[]);
    let host = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    };
    let archs = architectures(&local);
    assert_eq!(archs.len(), 10, "{archs:?}");
    assert!(archs.values().all(|a| a == host), "{archs:?}");
}

#[test]
fn a_stage_overrides_the_default_and_a_function_overrides_its_stage() {
    let (_tmp, dir) = harness::copy_project(&harness::fixture("build"));
    harness::write(
        &dir.join("stacks/project.yaml"),
        "app: buildfix\nregion: us-east-1\nstages:\n  dev: {}\n  intel: { architecture: x86_64 }\n",
    );
    harness::write(
        &dir.join("stacks/api.yaml"),
        "template: api.yaml.hbs\nfunctions:\n  hello: { crate: hello }\n  ping: { crate: ping, architecture: arm64 }\n",
    );
    let dev = architectures(&synth(&dir, "dev", "", &[]));
    assert_eq!(dev["HelloFunction"], "arm64");
    assert_eq!(dev["PingFunction"], "arm64");
    let intel = architectures(&synth(&dir, "intel", "", &[]));
    assert_eq!(intel["HelloFunction"], "x86_64", "the stage's architecture");
    assert_eq!(intel["PingFunction"], "arm64", "the function's own wins");
}

#[test]
fn architecture_auto_is_refused_with_what_to_write_instead() {
    let (_tmp, dir) = harness::copy_project(&harness::fixture("build"));
    harness::write(
        &dir.join("stacks/api.yaml"),
        "template: api.yaml.hbs\nfunctions:\n  ping: { crate: ping, architecture: auto }\n",
    );
    let run = harness::run(&dir, &["validate"]);
    run.assert_invalid(&[
        "stacks/api.yaml:3 at `functions.ping.architecture`",
        "architecture `auto` is no longer accepted: declare `x86_64` or `arm64`",
    ]);
}
