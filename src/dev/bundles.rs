//! The binary each deployed function runs: the bundle its code key points at,
//! fetched from the emulator's asset bucket and unpacked once under
//! `.barkctl/dev/bundles/<sha256>/bootstrap`.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::deployed::Function;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("function `{function}` has no S3 code location the local runtime can read")]
    NoCode { function: String },
    #[error("cannot fetch the bundle `s3://{bucket}/{key}` of `{function}`: {message}")]
    Fetch {
        function: String,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("the bundle of `{function}` is not a zip with a `bootstrap` entry: {message}")]
    Unpack { function: String, message: String },
    #[error("the bundle of `{function}` is built for {found}, this machine runs {host}")]
    Architecture {
        function: String,
        found: String,
        host: String,
    },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The ELF machine of a binary, as Lambda names architectures.
pub fn elf_architecture(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    match u16::from_le_bytes([bytes[18], bytes[19]]) {
        0x3e => Some("x86_64"),
        0xb7 => Some("arm64"),
        _ => Some("another architecture"),
    }
}

/// The host's architecture as Lambda names it: what a local stage is built for.
pub fn host_architecture() -> &'static str {
    crate::project::Architecture::host().as_str()
}

/// Fetch (or reuse) the executable of `function` from `bucket`.
pub async fn executable(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    function: &Function,
    cache: &Path,
) -> Result<PathBuf, BundleError> {
    let key = function
        .code_key
        .clone()
        .ok_or_else(|| BundleError::NoCode {
            function: function.name.clone(),
        })?;
    // `<app>/<sha256 of the binary>.zip`: the name says what the binary must hash to.
    let sha = Path::new(&key)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("bundle")
        .to_string();
    let dir = cache.join(&sha);
    let binary = dir.join("bootstrap");
    if let Ok(bytes) = std::fs::read(&binary) {
        if hex::encode(Sha256::digest(&bytes)) == sha {
            check_arch(&function.name, &bytes)?;
            return Ok(binary);
        }
    }
    let fetch_err = |message: String| BundleError::Fetch {
        function: function.name.clone(),
        bucket: bucket.to_string(),
        key: key.clone(),
        message,
    };
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| fetch_err(crate::aws::describe_error(&e)))?;
    let zipped = object
        .body
        .collect()
        .await
        .map_err(|e| fetch_err(e.to_string()))?
        .into_bytes();
    let unpack_err = |message: String| BundleError::Unpack {
        function: function.name.clone(),
        message,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped.to_vec()))
        .map_err(|e| unpack_err(e.to_string()))?;
    let mut entry = archive
        .by_name("bootstrap")
        .map_err(|e| unpack_err(e.to_string()))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| unpack_err(e.to_string()))?;
    check_arch(&function.name, &bytes)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    // Write aside and rename: a concurrent `barkctl invoke` never runs half a file.
    let tmp = dir.join(format!("bootstrap.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(write_err(&tmp))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(write_err(&tmp))?;
    std::fs::rename(&tmp, &binary).map_err(write_err(&binary))?;
    Ok(binary)
}

fn check_arch(function: &str, bytes: &[u8]) -> Result<(), BundleError> {
    let found = elf_architecture(bytes).unwrap_or("not an ELF executable");
    let host = host_architecture();
    if found != host {
        return Err(BundleError::Architecture {
            function: function.to_string(),
            found: found.to_string(),
            host: host.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_machine_names_the_architecture() {
        let mut head = b"\x7fELF".to_vec();
        head.resize(20, 0);
        head[18] = 0x3e;
        assert_eq!(elf_architecture(&head), Some("x86_64"));
        head[18] = 0xb7;
        assert_eq!(elf_architecture(&head), Some("arm64"));
        assert_eq!(elf_architecture(b"#!/bin/sh\n"), None);
    }
}
