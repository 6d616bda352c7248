//! Who may read what the server keeps on disk: the data dir is created 0700 (the SQLite engine
//! keeps its own files 0600), and start-up warns when the data dir or
//! a credentials file can be read by other local users (issue 11, finding 9).

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates the data dir 0700 when it does not exist (its parents as usual); warns when an
/// existing one is open to other users, whose events it would then show them.
pub(crate) fn prepare_data_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {
            warn_if_readable_by_others(dir, "the data dir");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Warns when `path` grants anything to its group or to others.
pub(crate) fn warn_if_readable_by_others(path: &Path, what: &str) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{what} {} has mode {mode:04o}: other local users can read it; make it private \
                 (chmod {} {})",
                path.display(),
                if meta.is_dir() { "700" } else { "600" },
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_dir_is_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/data");
        prepare_data_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        prepare_data_dir(&dir).unwrap();
    }
}
