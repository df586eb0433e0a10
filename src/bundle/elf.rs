//! Two facts about a built binary that decide whether Lambda can run it: the ELF
//! machine (must match the template's `Architectures`) and the newest glibc
//! symbol version it needs (`provided.al2023` ships glibc 2.34).
//!
//! Read with the `object` crate through a [`ReadCache`]: only the ELF header, the
//! section headers and the two small sections involved are read from disk, so this
//! costs well under a millisecond even for a large binary.

use std::fs::File;
use std::path::Path;

use object::elf::{FileHeader64, EM_AARCH64, EM_X86_64};
use object::read::elf::FileHeader;
use object::{Endianness, FileKind, ReadCache, ReadRef};

use super::Error;
use crate::project::Architecture;

/// The glibc of Amazon Linux 2023, the `provided.al2023` runtime.
pub const AL2023_GLIBC: (u32, u32) = (2, 34);

/// Lambda runs what the template's `Architectures` says; a binary for another
/// machine fails only at invoke time, so refuse it here (a `build.target` in
/// `.cargo/config.toml` can redirect a build without `--target`).
pub(crate) fn check_machine(
    binary: &Path,
    arch: Architecture,
    crate_name: &str,
) -> Result<(), Error> {
    let file = File::open(binary).map_err(|e| io_err(binary, e))?;
    let data = ReadCache::new(file);
    let machine = match FileKind::parse(&data) {
        Ok(FileKind::Elf64) => FileHeader64::<Endianness>::parse(&data)
            .and_then(|h| Ok(h.e_machine(h.endian()?)))
            .ok(),
        _ => None,
    };
    let found = match (machine, FileKind::parse(&data)) {
        (Some(EM_X86_64), _) if arch == Architecture::X86_64 => return Ok(()),
        (Some(EM_AARCH64), _) if arch == Architecture::Arm64 => return Ok(()),
        (Some(EM_X86_64), _) => "an x86_64 ELF".to_string(),
        (Some(EM_AARCH64), _) => "an arm64 ELF".to_string(),
        (Some(other), _) => format!("an ELF for machine {other:#x}"),
        (None, Ok(FileKind::Elf32)) => "a 32-bit ELF".to_string(),
        (None, _) => "not an ELF executable".to_string(),
    };
    Err(Error::WrongBinary {
        crate_name: crate_name.to_string(),
        binary: binary.to_path_buf(),
        expected: arch.as_str(),
        found,
    })
}

/// The newest `GLIBC_x.y` symbol version a 64-bit ELF needs, from its
/// `SHT_GNU_VERNEED` section (`.gnu.version_r`); `None` for a static binary, one
/// that needs no versioned glibc symbol, or a file that is not a 64-bit ELF.
pub fn glibc_needed(binary: &Path) -> Result<Option<(u32, u32)>, Error> {
    let file = File::open(binary).map_err(|e| io_err(binary, e))?;
    let data = ReadCache::new(file);
    if !matches!(FileKind::parse(&data), Ok(FileKind::Elf64)) {
        return Ok(None);
    }
    newest_glibc(&data).map_err(|e| {
        io_err(
            binary,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        )
    })
}

fn newest_glibc<'data, R: ReadRef<'data>>(data: R) -> object::read::Result<Option<(u32, u32)>> {
    let header = FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? else {
        return Ok(None);
    };
    let strings = sections.strings(endian, data, link)?;
    let mut newest: Option<(u32, u32)> = None;
    while let Some((_, mut auxes)) = needs.next()? {
        while let Some(aux) = auxes.next()? {
            if let Some(v) = glibc_version(aux.name(endian, strings)?) {
                newest = newest.max(Some(v));
            }
        }
    }
    Ok(newest)
}

/// `GLIBC_2.34` -> (2, 34); `GLIBC_PRIVATE` and other names -> None.
fn glibc_version(name: &[u8]) -> Option<(u32, u32)> {
    let v = std::str::from_utf8(name).ok()?.strip_prefix("GLIBC_")?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_version_names_parse() {
        assert_eq!(glibc_version(b"GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version(b"GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version(b"GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version(b"GCC_3.0"), None);
    }

    #[test]
    fn a_file_that_is_not_an_elf_needs_nothing_and_is_refused_by_machine() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("bootstrap");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
        assert_eq!(glibc_needed(&script).expect("readable"), None);
        let err = check_machine(&script, Architecture::Arm64, "x").expect_err("refused");
        assert!(err.to_string().contains("not an ELF"), "{err}");
    }

    /// The test binary is an ELF for the host: accepted for the host's architecture,
    /// refused for the other one, naming what it is.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_running_test_binary_is_an_elf_for_the_host() {
        let exe = std::env::current_exe().expect("current exe");
        let (host, other, name) = if cfg!(target_arch = "aarch64") {
            (Architecture::Arm64, Architecture::X86_64, "an arm64 ELF")
        } else {
            (Architecture::X86_64, Architecture::Arm64, "an x86_64 ELF")
        };
        check_machine(&exe, host, "t").expect("the host's ELF");
        let err = check_machine(&exe, other, "t").expect_err("the other machine");
        assert!(err.to_string().contains(name), "{err}");
    }

    /// The test binary itself is a dynamically linked glibc program (on the
    /// Linux gnu targets barkctl builds for): it must need some GLIBC_2.x, and
    /// no newer glibc than the one installed here.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_running_test_binary_needs_a_glibc_version() {
        let exe = std::env::current_exe().expect("current exe");
        let needed = glibc_needed(&exe)
            .expect("readable")
            .expect("versioned glibc symbols");
        assert_eq!(needed.0, 2);
        assert!(needed.1 >= 2 && needed.1 < 100, "{needed:?}");
    }
}
