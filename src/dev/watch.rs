//! `barkctl dev --watch`: notice edits under the project's `lambdas/` by polling
//! the tree's fingerprint (no inotify dependency; a scan of a few hundred files
//! takes well under a millisecond), so that the caller can rebuild and swap the
//! changed functions' binaries while the gateway keeps its connections.

use std::path::Path;
use std::time::SystemTime;

/// Number of files, total size and newest modification time of a tree: any
/// edit, addition or removal changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub files: u64,
    pub bytes: u64,
    pub newest: Option<SystemTime>,
}

/// The fingerprint of `dir` (missing: zero files). `target/` and dot-folders
/// (`.git`, `.barkctl`) are skipped: builds write there.
pub fn fingerprint(dir: &Path) -> Fingerprint {
    let mut fp = Fingerprint {
        files: 0,
        bytes: 0,
        newest: None,
    };
    walk(dir, &mut fp);
    fp
}

fn walk(dir: &Path, fp: &mut Fingerprint) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            walk(&e.path(), fp);
        } else {
            fp.files += 1;
            fp.bytes += meta.len();
            if let Ok(m) = meta.modified() {
                fp.newest = Some(fp.newest.map_or(m, |n| n.max(m)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_an_addition_and_a_removal_each_change_the_fingerprint() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("crate/src");
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("main.rs"), "fn main() {}").expect("write");
        let a = fingerprint(dir.path());
        assert_eq!(a.files, 1);
        std::fs::write(src.join("main.rs"), "fn main() { }").expect("write");
        let b = fingerprint(dir.path());
        assert_ne!(a, b);
        std::fs::write(src.join("lib.rs"), "").expect("write");
        let c = fingerprint(dir.path());
        assert_eq!(c.files, 2);
        std::fs::remove_file(src.join("lib.rs")).expect("rm");
        assert_eq!(fingerprint(dir.path()).files, 1);
        // Build output does not count.
        std::fs::create_dir_all(dir.path().join("target")).expect("mkdir");
        std::fs::write(dir.path().join("target/x"), "x").expect("write");
        assert_eq!(fingerprint(dir.path()).files, 1);
    }
}
