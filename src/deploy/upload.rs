//! Putting one object in S3: a single PutObject up to the multipart threshold,
//! CreateMultipartUpload / UploadPart / CompleteMultipartUpload above it (aborted
//! when a part fails). Each attempt's timeout scales with the bytes it sends, so
//! a 15 MB bundle on a slow link is not cut off by a fixed per-call timeout.

use std::path::Path;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::aws::describe_error;

const MIB: u64 = 1024 * 1024;

/// Objects larger than this go up in parts (`BARKCTL_MULTIPART_THRESHOLD_BYTES`).
pub const MULTIPART_THRESHOLD: u64 = 8 * MIB;
pub const THRESHOLD_ENV: &str = "BARKCTL_MULTIPART_THRESHOLD_BYTES";
/// The size of each part but the last. S3 takes no part under 5 MiB but the
/// last; `BARKCTL_MULTIPART_PART_BYTES` sets another size for emulators that
/// take smaller parts (tests).
pub const PART_SIZE: u64 = 8 * MIB;
pub const PART_ENV: &str = "BARKCTL_MULTIPART_PART_BYTES";

/// What to upload.
pub enum Body<'a> {
    File(&'a Path),
    Bytes(Vec<u8>),
}

/// A failed call: which one, and what S3 said.
#[derive(Debug)]
pub struct Failed {
    pub operation: &'static str,
    pub message: String,
}

fn env_bytes(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The per-attempt timeout for sending `bytes`: 30 s, plus 1 s per MiB (a
/// connection slower than 1 MiB/s times out; the SDK then retries).
pub fn attempt_timeout(bytes: u64) -> Duration {
    Duration::from_secs(30 + bytes.div_ceil(MIB))
}

fn timeouts(bytes: u64) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(attempt_timeout(bytes))
            .build(),
    )
}

/// The byte ranges of the parts of an object of `bytes` bytes.
pub fn parts(bytes: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part_size = part_size.max(1);
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < bytes {
        let len = part_size.min(bytes - offset);
        out.push((offset, len));
        offset += len;
    }
    out
}

async fn stream(body: &Body<'_>, offset: u64, len: u64) -> Result<ByteStream, Failed> {
    match body {
        Body::Bytes(b) => {
            let end = usize::try_from(offset + len)
                .unwrap_or(b.len())
                .min(b.len());
            let start = usize::try_from(offset).unwrap_or(end).min(end);
            Ok(ByteStream::from(b[start..end].to_vec()))
        }
        Body::File(p) => ByteStream::read_from()
            .path(p)
            .offset(offset)
            .length(Length::Exact(len))
            .build()
            .await
            .map_err(|e| Failed {
                operation: "read the file to upload",
                message: format!("`{}`: {e}", p.display()),
            }),
    }
}

/// Put `body` (`bytes` long) at `bucket`/`key`.
pub async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Body<'_>,
    bytes: u64,
    content_type: Option<&str>,
) -> Result<(), Failed> {
    if bytes <= env_bytes(THRESHOLD_ENV, MULTIPART_THRESHOLD) {
        let data = stream(&body, 0, bytes).await?;
        return s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_string))
            .body(data)
            .customize()
            .config_override(timeouts(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failed {
                operation: "PutObject",
                message: describe_error(&e),
            });
    }
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .set_content_type(content_type.map(str::to_string))
        .send()
        .await
        .map_err(|e| Failed {
            operation: "CreateMultipartUpload",
            message: describe_error(&e),
        })?;
    let Some(upload_id) = created.upload_id().map(str::to_string) else {
        return Err(Failed {
            operation: "CreateMultipartUpload",
            message: "the answer has no upload id".into(),
        });
    };
    let sent = send_parts(s3, bucket, key, &upload_id, &body, bytes).await;
    if sent.is_err() {
        // Best effort: the bucket's lifecycle rule aborts what is left after 7 days.
        let _ = s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    sent
}

async fn send_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    body: &Body<'_>,
    bytes: u64,
) -> Result<(), Failed> {
    let mut done = Vec::new();
    for (i, (offset, len)) in parts(bytes, env_bytes(PART_ENV, PART_SIZE))
        .into_iter()
        .enumerate()
    {
        let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .body(stream(body, offset, len).await?)
            .customize()
            .config_override(timeouts(len))
            .send()
            .await
            .map_err(|e| Failed {
                operation: "UploadPart",
                message: describe_error(&e),
            })?;
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Failed {
            operation: "CompleteMultipartUpload",
            message: describe_error(&e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_15_mb_bundle_goes_in_two_parts_with_a_longer_timeout() {
        let bytes = 15_000_000;
        assert!(bytes > MULTIPART_THRESHOLD);
        assert_eq!(
            parts(bytes, PART_SIZE),
            vec![(0, PART_SIZE), (PART_SIZE, bytes - PART_SIZE)]
        );
        assert_eq!(attempt_timeout(bytes), Duration::from_secs(45));
        assert_eq!(attempt_timeout(PART_SIZE), Duration::from_secs(38));
        assert_eq!(attempt_timeout(0), Duration::from_secs(30));
    }

    #[test]
    fn parts_cover_the_object_exactly() {
        assert_eq!(parts(0, 4), vec![]);
        assert_eq!(parts(4, 4), vec![(0, 4)]);
        assert_eq!(parts(9, 4), vec![(0, 4), (4, 4), (8, 1)]);
    }
}
