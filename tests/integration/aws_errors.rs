//! What a person sees when AWS cannot be reached: missing credentials, an unknown
//! profile, a host name that does not resolve, an expired SSO session. Each gets
//! its own message and hint, and none prints the SDK's debug structures
//! (`DispatchFailure { source: ConnectorError { ... } }`: the bug this pins).
//!
//! `deploy --dry-run` of `examples/hello` on its `dev` stage (AWS, no emulator),
//! with HOME in a temp dir and instance metadata disabled, so that nothing of this
//! machine's AWS setup leaks in.

use std::path::Path;
use std::process::Stdio;

use super::harness::{self, repo_root, Run};

fn dry_run(project: &Path, home: &Path, extra_env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = harness::barkctl(project);
    cmd.args(["deploy", "--stage", "dev", "--dry-run"])
        .args(args)
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ENDPOINT_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("barkctl runs"))
}

fn no_debug_structures(run: &Run) {
    for s in ["DispatchFailure", "ConnectorError", "SdkBody", "{ source"] {
        assert!(!run.stderr.contains(s), "debug text in:\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let (tmp, project) = harness::copy_project(&repo_root().join("examples/hello"));
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).expect("mkdir");
    (tmp, project, home)
}

#[test]
fn missing_credentials_are_named_with_a_hint_not_a_debug_structure() {
    let (_tmp, project, home) = setup();
    let run = dry_run(&project, &home, &[], &[]);
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stderr.contains("no AWS credentials found"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("\n\nhint: pass `--profile NAME`"),
        "{}",
        run.stderr
    );
    no_debug_structures(&run);
}

#[test]
fn an_unknown_profile_is_named_with_the_defined_ones() {
    let (_tmp, project, home) = setup();
    harness::write(
        &home.join(".aws/config"),
        "[default]\nregion = us-east-1\n\n[profile work]\nregion = eu-west-1\n",
    );
    let run = dry_run(&project, &home, &[], &["--profile", "nope"]);
    run.assert_invalid(&[
        "AWS profile `nope` is not defined in ~/.aws/config or ~/.aws/credentials (defined: default, work)",
        "hint: create it with `aws configure --profile NAME`",
    ]);
    no_debug_structures(&run);
}

#[test]
fn a_host_name_that_does_not_resolve_is_a_dns_failure() {
    let (_tmp, project, home) = setup();
    let run = dry_run(
        &project,
        &home,
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
        &["--endpoint-url", "http://no-such-host.invalid"],
    );
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stderr
            .contains("cannot resolve the endpoint's host name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: check the region and `endpoint_url`"),
        "{}",
        run.stderr
    );
    no_debug_structures(&run);
}

#[test]
fn an_expired_sso_session_asks_to_log_in_again() {
    let (_tmp, project, home) = setup();
    harness::write(
        &home.join(".aws/config"),
        "[profile corp]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\nregion = us-east-1\n\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n",
    );
    // The SDK's token cache: named by the SHA-1 of the session name, expired.
    let cache = home.join(".aws/sso/cache");
    let name = sha1_hex(b"corp");
    harness::write(
        &cache.join(format!("{name}.json")),
        r#"{"accessToken": "expired", "expiresAt": "2020-01-01T00:00:00Z", "region": "us-east-1", "startUrl": "https://corp.awsapps.com/start"}"#,
    );
    let run = dry_run(&project, &home, &[], &["--profile", "corp"]);
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stderr
            .contains("the AWS SSO session has expired or is not valid"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: log in again: `aws sso login`"),
        "{}",
        run.stderr
    );
    no_debug_structures(&run);
}

/// SHA-1 (FIPS 180-1), only to name the SDK's SSO cache file.
fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h = [
            h[0].wrapping_add(a),
            h[1].wrapping_add(b),
            h[2].wrapping_add(c),
            h[3].wrapping_add(d),
            h[4].wrapping_add(e),
        ];
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}
