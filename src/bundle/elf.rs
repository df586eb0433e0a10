//! Two facts about a built binary that decide whether Lambda can run it: the ELF
//! machine (must match the template's `Architectures`) and the newest glibc
//! symbol version it needs (`provided.al2023` ships glibc 2.34).
//!
//! Only the ELF header, the section headers and two small sections are read, so
//! this costs well under a millisecond even for a large binary.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::Error;
use crate::project::Architecture;

/// The glibc of Amazon Linux 2023, the `provided.al2023` runtime.
pub const AL2023_GLIBC: (u32, u32) = (2, 34);

const EM_X86_64: u16 = 0x3e;
const EM_AARCH64: u16 = 0xb7;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;

/// Lambda runs what the template's `Architectures` says; a binary for another
/// machine fails only at invoke time, so refuse it here (a `build.target` in
/// `.cargo/config.toml` can redirect a build without `--target`).
pub(crate) fn check_machine(
    binary: &Path,
    arch: Architecture,
    crate_name: &str,
) -> Result<(), Error> {
    let mut head = Vec::with_capacity(20);
    File::open(binary)
        .and_then(|f| f.take(20).read_to_end(&mut head))
        .map_err(|e| io_err(binary, e))?;
    let found = if head.len() < 20 || &head[..4] != b"\x7fELF" {
        "not an ELF executable".to_string()
    } else {
        match u16::from_le_bytes([head[18], head[19]]) {
            EM_X86_64 if arch == Architecture::X86_64 => return Ok(()),
            EM_AARCH64 if arch == Architecture::Arm64 => return Ok(()),
            EM_X86_64 => "an x86_64 ELF".to_string(),
            EM_AARCH64 => "an arm64 ELF".to_string(),
            other => format!("an ELF for machine {other:#x}"),
        }
    };
    Err(Error::WrongBinary {
        crate_name: crate_name.to_string(),
        binary: binary.to_path_buf(),
        expected: arch.as_str(),
        found,
    })
}

/// The newest `GLIBC_x.y` symbol version a 64-bit little-endian ELF needs, from
/// its `.gnu.version_r` section; `None` for a static binary or one that needs
/// no versioned glibc symbol.
pub fn glibc_needed(binary: &Path) -> Result<Option<(u32, u32)>, Error> {
    let mut f = File::open(binary).map_err(|e| io_err(binary, e))?;
    read_glibc_needed(&mut f).map_err(|e| io_err(binary, e))
}

fn read_glibc_needed(f: &mut File) -> std::io::Result<Option<(u32, u32)>> {
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh)?;
    // ELFCLASS64, ELFDATA2LSB: the only layouts Lambda runs.
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Ok(None);
    }
    let shoff = u64_at(&eh, 0x28);
    let shentsize = u16_at(&eh, 0x3a) as u64;
    let shnum = u16_at(&eh, 0x3c) as u64;
    if shoff == 0 || shentsize < 64 || shnum == 0 || shnum > 4096 {
        return Ok(None);
    }
    let mut table = vec![0u8; (shentsize * shnum) as usize];
    f.seek(SeekFrom::Start(shoff))?;
    f.read_exact(&mut table)?;
    let section = |i: u64| &table[(i * shentsize) as usize..((i + 1) * shentsize) as usize];
    let Some(verneed) = (0..shnum)
        .map(section)
        .find(|s| u32_at(s, 4) == SHT_GNU_VERNEED)
    else {
        return Ok(None);
    };
    let link = u32_at(verneed, 0x28) as u64;
    if link >= shnum {
        return Ok(None);
    }
    let data = read_section(f, verneed)?;
    let strings = read_section(f, section(link))?;
    let name_at = |off: usize| -> &[u8] {
        let rest = strings.get(off..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    };

    let mut newest: Option<(u32, u32)> = None;
    // Verneed entries: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32,
    // vn_next u32; each with vn_cnt Vernaux: hash u32, flags u16, other u16,
    // name u32, next u32. Bounded walks: a corrupt chain cannot loop forever.
    let mut at = 0usize;
    for _ in 0..256 {
        let Some(vn) = data.get(at..at + 16) else {
            break;
        };
        let count = u16_at(vn, 2) as usize;
        let mut aux = at + u32_at(vn, 8) as usize;
        for _ in 0..count.min(1024) {
            let Some(va) = data.get(aux..aux + 16) else {
                break;
            };
            if let Some(v) = glibc_version(name_at(u32_at(va, 8) as usize)) {
                newest = newest.max(Some(v));
            }
            match u32_at(va, 12) {
                0 => break,
                next => aux += next as usize,
            }
        }
        match u32_at(vn, 12) {
            0 => break,
            next => at += next as usize,
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

fn read_section(f: &mut File, header: &[u8]) -> std::io::Result<Vec<u8>> {
    let offset = u64_at(header, 0x18);
    let size = u64_at(header, 0x20).min(16 << 20);
    let mut buf = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut buf)?;
    Ok(buf)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
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
