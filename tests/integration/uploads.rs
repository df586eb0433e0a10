//! Uploads to the asset bucket: a multipart upload above the threshold, and
//! `diff` sending a template over 51,200 bytes by URL, uploaded as deploy does.
//!
//! The threshold and part size are lowered (`BARKCTL_MULTIPART_THRESHOLD_BYTES`,
//! `BARKCTL_MULTIPART_PART_BYTES`), and moto takes parts that small
//! (`S3_UPLOAD_PART_MIN_SIZE`), so a ~120 KB template of `examples/hello` goes up
//! in parts; the object is checked with HeadObject and GetObject.

use std::path::Path;

use super::deploy::{sdk, Emulator};
use super::harness::{self, Run};

const PADDING: usize = 120_000;
const PART: u64 = 32 * 1024;

fn barkctl(project: &Path, endpoint: &str, args: &[&str]) -> Run {
    let out = harness::barkctl(project)
        .args(args)
        .args(["--endpoint-url", endpoint])
        .env("CI", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("BARKCTL_CALL_LOG")
        .env("BARKCTL_MULTIPART_THRESHOLD_BYTES", "65536")
        .env("BARKCTL_MULTIPART_PART_BYTES", PART.to_string())
        .output()
        .expect("barkctl runs");
    Run::from(out)
}

/// Key -> (size, ETag, body) of every template the toolkit bucket holds for
/// `hello-local-queue`.
async fn templates(endpoint: &str) -> Vec<(String, i64, String, String)> {
    let conf = sdk(endpoint).await;
    let cfn = aws_sdk_cloudformation::Client::new(&conf);
    let toolkit = cfn
        .describe_stacks()
        .stack_name("barkctl-hello-toolkit")
        .send()
        .await
        .expect("toolkit stack");
    let bucket = toolkit.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("AssetsBucketName"))
        .and_then(|o| o.output_value())
        .expect("bucket output")
        .to_string();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("hello/templates/hello-local-queue/")
        .send()
        .await
        .expect("list");
    let mut out = Vec::new();
    for o in listed.contents() {
        let key = o.key().expect("key").to_string();
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .expect("head");
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        out.push((
            key,
            head.content_length().unwrap_or_default(),
            head.e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    out
}

#[test]
fn a_template_over_the_threshold_goes_up_in_parts_and_diff_uploads_large_templates() {
    let emu = Emulator::start_with_env(&[("S3_UPLOAD_PART_MIN_SIZE", "1024")]);
    let endpoint = emu.url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_tmp, project) = harness::copy_project(&harness::repo_root().join("examples/hello"));
    let template = project.join("templates/queue.yaml.hbs");
    let text = std::fs::read_to_string(&template).expect("read");
    std::fs::write(
        &template,
        text.replacen(
            "\nResources:",
            &format!(
                "\nMetadata:\n  Padding: \"{}\"\n\nResources:",
                "x".repeat(PADDING)
            ),
            1,
        ),
    )
    .expect("write");

    let deployed = barkctl(
        &project,
        &endpoint,
        &["deploy", "--stage", "local", "queue", "--exclusively"],
    );
    deployed.assert_ok();
    let first = rt.block_on(templates(&endpoint));
    assert_eq!(first.len(), 1, "{first:?}");
    let (_, size, etag, body) = &first[0];
    let size = u64::try_from(*size).expect("size");
    assert!(size > PADDING as u64, "{size}");
    assert_eq!(size, body.len() as u64);
    // A multipart object's ETag ends in `-<number of parts>`.
    assert!(
        etag.ends_with(&format!("-{}", size.div_ceil(PART))),
        "ETag {etag} for {size} bytes in {PART}-byte parts"
    );
    let doc: serde_json::Value = serde_json::from_str(body).expect("the template, whole");
    assert_eq!(
        doc["Metadata"]["Padding"].as_str().map(str::len),
        Some(PADDING)
    );

    // diff sends the changed template by URL, uploaded the same way.
    let stack = project.join("stacks/queue.yaml");
    let text = std::fs::read_to_string(&stack).expect("read");
    std::fs::write(
        &stack,
        text.replacen(
            "visibility_timeout_seconds: 60",
            "visibility_timeout_seconds: 90",
            1,
        ),
    )
    .expect("write");
    let diff = barkctl(
        &project,
        &endpoint,
        &[
            "diff",
            "--stage",
            "local",
            "queue",
            "--method",
            "change-set",
        ],
    );
    diff.assert_ok();
    assert!(diff.stdout.contains("VisibilityTimeout"), "{diff:#?}");
    assert!(
        !format!("{}{}", diff.stdout, diff.stderr).contains("takes inline"),
        "{diff:#?}"
    );
    let after = rt.block_on(templates(&endpoint));
    assert_eq!(after.len(), 2, "{after:?}");
    let (_, _, etag, body) = after
        .iter()
        .find(|t| {
            t.3.contains("\"VisibilityTimeout\":90") || t.3.contains("\"VisibilityTimeout\":\"90\"")
        })
        .unwrap_or_else(|| panic!("no uploaded template with the new timeout: {after:?}"));
    assert!(etag.contains('-'), "{etag}");
    assert!(body.len() > PADDING);
}
