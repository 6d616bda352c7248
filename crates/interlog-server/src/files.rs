//! Who may read what the server keeps on disk: the data dir is created 0700, the store's files
//! (database, WAL, shared memory, lock) are kept 0600, and start-up warns when the data dir or
//! a credentials file can be read by other local users (issue 11, finding 9).

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The store's files in the data dir, as SQLite and the store name them.
const STORE_FILES: &[&str] = &["interlog.db", "interlog.db-wal", "interlog.db-shm", "interlog.lock"];

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

/// Narrows the store's files to 0600. SQLite creates its files 0644 (less the umask) and gives
/// the WAL and shared-memory files the database's mode, so after this every later WAL is
/// 0600 too. Files of an older start are narrowed the same way.
pub(crate) fn restrict_store_files(dir: &Path) {
    for name in STORE_FILES {
        let path = dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.file_type().is_file() && meta.permissions().mode() & 0o077 != 0 {
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %path.display(), "cannot make the file private (mode 0600): {e}");
            }
        }
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
    fn a_new_data_dir_is_private_and_store_files_are_narrowed() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/data");
        prepare_data_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::write(dir.join("interlog.db"), b"").unwrap();
        std::fs::set_permissions(dir.join("interlog.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_store_files(&dir);
        assert_eq!(std::fs::metadata(dir.join("interlog.db")).unwrap().permissions().mode() & 0o777, 0o600);
        prepare_data_dir(&dir).unwrap();
    }
}
