//! One bundle on disk: the binary's sha256 (cached by size and mtime) and a
//! reproducible `bootstrap.zip` written atomically.
//!
//! Files in `target/lambda/<crate>/`:
//! - `bootstrap.zip`: one entry `bootstrap`, mode 0755, time 1980-01-01 00:00
//! - `bootstrap.sha256`: the hex sha256 of the binary inside `bootstrap.zip`
//! - `bootstrap.stamp`: binary path, size, mtime and sha256, so an unchanged
//!   binary is not even read again

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::Error;
use crate::project::Architecture;

pub(crate) const ZIP_NAME: &str = "bootstrap.zip";
const SHA_NAME: &str = "bootstrap.sha256";
const STAMP_NAME: &str = "bootstrap.stamp";

/// How hard to deflate a bundle. zlib-rs's level 6 (zlib-ng's "medium"
/// strategy) left realtime-connect's arm64 `lambda` bundle 7% larger than its
/// level 9 (3.17 MB against 2.96 MB, measured). A local stage's dev binaries
/// (~45 MB each, rezipped after every rebuild that `watch` picks up) never leave
/// the machine: level 1 zips BarkBase's ten in 1.5 s instead of 3.5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deflate {
    /// Level 1: local stages.
    Fast,
    /// Level 9: bundles that are uploaded (size limits, upload, cold start).
    Small,
}

impl Deflate {
    fn level(self) -> i64 {
        match self {
            Deflate::Fast => 1,
            Deflate::Small => 9,
        }
    }
}

/// What `ensure_bundle` found or made.
#[derive(Debug)]
pub(crate) struct Packed {
    pub zip: PathBuf,
    pub sha256: String,
    pub zip_bytes: u64,
    pub rezipped: bool,
}

/// The bundle of `binary` in `dir`: reused when `bootstrap.sha256` names the
/// binary's hash and the zip exists, written otherwise.
pub(crate) fn ensure_bundle(
    binary: &Path,
    dir: &Path,
    arch: Architecture,
    crate_name: &str,
    deflate: Deflate,
) -> Result<Packed, Error> {
    super::elf::check_machine(binary, arch, crate_name)?;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let (sha256, stamp) = binary_hash(binary, dir)?;
    let zip = dir.join(ZIP_NAME);
    let recorded = std::fs::read_to_string(dir.join(SHA_NAME)).unwrap_or_default();
    let rezipped = if recorded.trim() == sha256 && zip.is_file() {
        false
    } else {
        write_atomically(&zip, |f| write_zip(binary, f, deflate))?;
        // After the zip: a crash in between leaves a stale hash, so the next
        // build zips again rather than trusting a half-written bundle.
        write_atomically(&dir.join(SHA_NAME), |f| {
            f.write_all(format!("{sha256}\n").as_bytes())
                .map_err(ZipOrIo::Io)
        })?;
        true
    };
    if let Some(stamp) = stamp {
        write_atomically(&dir.join(STAMP_NAME), |f| {
            f.write_all(stamp.as_bytes()).map_err(ZipOrIo::Io)
        })?;
    }
    let zip_bytes = std::fs::metadata(&zip).map_err(|e| io_err(&zip, e))?.len();
    Ok(Packed {
        zip,
        sha256,
        zip_bytes,
        rezipped,
    })
}

/// The binary's sha256, and the new stamp text to write when it had to be
/// computed. Cargo rewrites a binary it rebuilds, so the same path, size and
/// nanosecond mtime mean the same content.
fn binary_hash(binary: &Path, dir: &Path) -> Result<(String, Option<String>), Error> {
    let meta = std::fs::metadata(binary).map_err(|e| io_err(binary, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = format!("{}\t{}\t{}", binary.display(), meta.len(), mtime);
    if let Ok(stamp) = std::fs::read_to_string(dir.join(STAMP_NAME)) {
        if let Some((k, sha)) = stamp.trim_end().rsplit_once('\t') {
            if k == key && sha.len() == 64 && mtime != 0 {
                return Ok((sha.to_string(), None));
            }
        }
    }
    let sha = sha256_file(binary)?;
    Ok((sha.clone(), Some(format!("{key}\t{sha}\n"))))
}

pub(crate) fn sha256_file(path: &Path) -> Result<String, Error> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The zip bytes for `binary`: identical input gives identical output (fixed
/// time, fixed mode, no extra fields), so re-zipping never changes a bundle.
pub(crate) fn write_zip<W: Write + std::io::Seek>(
    binary: &Path,
    out: W,
    deflate: Deflate,
) -> Result<(), ZipOrIo> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(deflate.level()))
        .unix_permissions(0o755)
        .last_modified_time(DateTime::default());
    let mut zip = ZipWriter::new(out);
    zip.start_file("bootstrap", options).map_err(ZipOrIo::Zip)?;
    let mut input = File::open(binary).map_err(ZipOrIo::Io)?;
    std::io::copy(&mut input, &mut zip).map_err(ZipOrIo::Io)?;
    zip.finish().map_err(ZipOrIo::Zip)?;
    Ok(())
}

#[derive(Debug)]
pub(crate) enum ZipOrIo {
    Zip(zip::result::ZipError),
    Io(std::io::Error),
}

/// Write through a temp file in the same folder, then rename over `path`: a
/// reader (or a deploy running alongside) sees the old file or the new one.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<(), ZipOrIo>,
) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = File::create(&tmp)
        .map_err(ZipOrIo::Io)
        .and_then(|mut f| {
            fill(&mut f)?;
            f.sync_all().map_err(ZipOrIo::Io)
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(ZipOrIo::Io));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        match e {
            ZipOrIo::Io(source) => io_err(path, source),
            ZipOrIo::Zip(source) => Error::Zip {
                path: path.to_path_buf(),
                source,
            },
        }
    })
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn fake_elf(machine: u16) -> Vec<u8> {
        let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
        bytes.resize(18, 0);
        bytes.extend_from_slice(&machine.to_le_bytes());
        bytes.extend((0..50_000u32).map(|i| (i * 7 % 251) as u8));
        bytes
    }

    #[test]
    fn zipping_the_same_binary_twice_gives_the_same_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("app");
        std::fs::write(&bin, fake_elf(0x3e)).expect("write");
        let mut first = Cursor::new(Vec::new());
        write_zip(&bin, &mut first, Deflate::Small).expect("zip");
        // A later mtime on the input must not leak into the archive.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&bin, fake_elf(0x3e)).expect("rewrite");
        let mut second = Cursor::new(Vec::new());
        write_zip(&bin, &mut second, Deflate::Small).expect("zip");
        assert_eq!(first.get_ref(), second.get_ref());

        let mut archive = zip::ZipArchive::new(Cursor::new(first.into_inner())).expect("read");
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).expect("entry");
        assert_eq!(entry.name().expect("utf-8 name"), "bootstrap");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        let t = entry.last_modified().expect("time");
        assert_eq!((t.year(), t.month(), t.day()), (1980, 1, 1));
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("inflate");
        assert_eq!(content, fake_elf(0x3e));
    }

    #[test]
    fn uploaded_bundles_deflate_smaller_than_local_ones_and_both_unzip_to_the_binary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("app");
        // Code-like input: repeats at many distances, as in a binary.
        let mut bytes = fake_elf(0xb7);
        for i in 0..200_000u32 {
            bytes.extend_from_slice(&(i % 977 * 31 + i % 13).to_le_bytes()[..3]);
        }
        std::fs::write(&bin, &bytes).expect("write");
        let zipped = |deflate| {
            let mut out = Cursor::new(Vec::new());
            write_zip(&bin, &mut out, deflate).expect("zip");
            let data = out.into_inner();
            let mut archive = zip::ZipArchive::new(Cursor::new(data.clone())).expect("read");
            let mut content = Vec::new();
            archive
                .by_index(0)
                .expect("entry")
                .read_to_end(&mut content)
                .expect("inflate");
            assert_eq!(content, bytes);
            data.len()
        };
        let (fast, small) = (zipped(Deflate::Fast), zipped(Deflate::Small));
        assert!(small < fast, "level 9 {small} bytes, level 1 {fast}");
    }

    #[test]
    fn an_unchanged_binary_is_reused_and_a_changed_one_rezipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("app");
        let out = dir.path().join("lambda/app");
        std::fs::write(&bin, fake_elf(0x3e)).expect("write");
        let first =
            ensure_bundle(&bin, &out, Architecture::X86_64, "app", Deflate::Small).expect("bundle");
        assert!(first.rezipped);
        assert_eq!(first.sha256, sha256_file(&bin).expect("hash"));
        let second =
            ensure_bundle(&bin, &out, Architecture::X86_64, "app", Deflate::Small).expect("bundle");
        assert!(!second.rezipped);
        assert_eq!(second.sha256, first.sha256);

        let mut changed = fake_elf(0x3e);
        changed.push(1);
        std::fs::write(&bin, changed).expect("write");
        let third =
            ensure_bundle(&bin, &out, Architecture::X86_64, "app", Deflate::Small).expect("bundle");
        assert!(third.rezipped);
        assert_ne!(third.sha256, first.sha256);
        assert_eq!(
            std::fs::read_to_string(out.join(SHA_NAME))
                .expect("sha file")
                .trim(),
            third.sha256
        );
    }

    #[test]
    fn a_binary_for_another_architecture_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("app");
        let out = dir.path().join("out");
        let pack = || ensure_bundle(&bin, &out, Architecture::X86_64, "app", Deflate::Small);
        std::fs::write(&bin, fake_elf(0xb7)).expect("write");
        let err = pack().expect_err("arm64 binary for an x86_64 function");
        assert!(err.to_string().contains("an arm64 ELF"), "{err}");
        std::fs::write(&bin, b"#!/bin/sh\necho hi\n").expect("write");
        let err = pack().expect_err("a script is not a Lambda binary");
        assert!(err.to_string().contains("not an ELF"), "{err}");
    }
}
