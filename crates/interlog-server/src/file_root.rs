//! Confinement of every local path a request names (`file://` export destinations today,
//! import sources when they come) to the operator's root directory, one folder per account.
//!
//! A `file:///…/` location must lie under `<root>/<account-id>/`. It is resolved component by
//! component from an open handle on the root, each folder opened with `O_NOFOLLOW`, so `..`,
//! locations outside the root and symbolic links anywhere below it are refused, and nothing is
//! resolved twice (no window for swapping a folder for a link between a check and a use).
//! Files are created new (`O_EXCL | O_NOFOLLOW`, mode 0600) and published under their final
//! name with a hard link, which never replaces anything that exists. Error messages name only
//! what the caller wrote and its own folder, never the state of the rest of the file system.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// The operator's root (`--export-dir`), opened once at start-up.
#[derive(Debug)]
pub struct FileRoot {
    /// The root as configured, made absolute (what callers may write).
    configured: PathBuf,
    /// The same directory with symbolic links resolved (also accepted).
    canonical: PathBuf,
    fd: OwnedFd,
}

/// A folder inside an account's part of the root, held open.
#[derive(Debug)]
pub struct ConfinedDir {
    fd: OwnedFd,
    /// The location as the caller wrote it, for messages.
    location: String,
}

/// Why a location or a file was refused. Every message can be shown to the caller.
#[derive(Debug)]
pub enum ConfineError {
    /// The operator set no root: no `file://` location is accepted.
    NoRoot,
    /// Not a `file:///absolute/path/` location.
    NotFile(String),
    /// `..` or `.` among the components.
    DotSegment(String),
    /// Outside the account's folder; `allowed` is that folder.
    Outside { location: String, allowed: String },
    /// A component (relative to the account's folder) is a symbolic link.
    Symlink(String),
    /// A component (relative to the account's folder) exists and is not a folder.
    NotADirectory(String),
    /// A file name with a separator, a NUL or a dot segment.
    BadName(String),
    /// The file to publish exists already; it is left as it is.
    Exists(String),
    /// A component (relative to the account's folder) of a location to read does not exist.
    Missing(String),
    /// A folder to read holds more files than one job reads.
    TooManyFiles { location: String, max: usize },
    /// Anything else the operating system refused; the cause is for the server log only.
    Io { what: &'static str, cause: io::Error },
}

impl fmt::Display for ConfineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfineError::NoRoot => write!(
                f,
                "This server accepts no file:// locations: its operator has not set an export directory \
                 (interlog serve --export-dir DIR)"
            ),
            ConfineError::NotFile(l) => write!(f, "'{l}' is not a file:///absolute/path/ location"),
            ConfineError::DotSegment(l) => {
                write!(f, "The location '{l}' contains a '.' or '..' segment; name the folder directly")
            }
            ConfineError::Outside { location, allowed } => {
                write!(f, "The location '{location}' is outside this account's folder: use a path under {allowed}")
            }
            ConfineError::Symlink(c) => {
                write!(f, "'{c}' in this account's folder is a symbolic link; links are not followed")
            }
            ConfineError::NotADirectory(c) => write!(f, "'{c}' in this account's folder is not a folder"),
            ConfineError::BadName(n) => write!(f, "'{n}' is not a valid file name"),
            ConfineError::Exists(n) => {
                write!(f, "A file named '{n}' is already in the destination folder; it is never overwritten")
            }
            ConfineError::Missing(c) => write!(f, "'{c}' does not exist in this account's folder"),
            ConfineError::TooManyFiles { location, max } => {
                write!(f, "The folder '{location}' holds more than {max} files; name fewer")
            }
            ConfineError::Io { what, .. } => write!(f, "The server could not {what} (see the server log)"),
        }
    }
}

impl std::error::Error for ConfineError {}

impl ConfineError {
    /// The operating system's error, for the server log (never for the caller).
    pub fn cause(&self) -> Option<&io::Error> {
        match self {
            ConfineError::Io { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

fn io_error(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> ConfineError {
    move |e| ConfineError::Io { what, cause: e.into() }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl FileRoot {
    /// Opens (creating it 0700 if missing) the operator's root.
    pub fn open(dir: &Path) -> io::Result<FileRoot> {
        if !dir.exists() {
            std::fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))?;
            std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(dir)?;
        }
        let configured = std::path::absolute(dir)?;
        let canonical = std::fs::canonicalize(dir)?;
        // The root itself may be a link the operator made; only what is below it is confined.
        let fd = rustix::fs::open(&canonical, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(FileRoot { configured, canonical, fd })
    }

    /// The root as configured (absolute).
    pub fn path(&self) -> &Path {
        &self.configured
    }

    /// The location of `account`'s folder, as callers write it.
    pub fn account_location(&self, account: &str) -> String {
        format!("file://{}/{account}/", self.configured.display())
    }

    /// Resolves `location` (`file:///…/`) to a folder under `<root>/<account>/`, creating the
    /// missing folders 0700.
    ///
    /// # Errors
    ///
    /// [`ConfineError`] naming the problem: not a `file://` location, a dot segment, outside the
    /// account's folder, a symbolic link or a file among the components, an OS failure.
    pub fn resolve_dir(&self, account: &str, location: &str) -> Result<ConfinedDir, ConfineError> {
        let outside =
            || ConfineError::Outside { location: location.to_owned(), allowed: self.account_location(account) };
        let path = location.strip_prefix("file://").ok_or_else(|| ConfineError::NotFile(location.to_owned()))?;
        if !path.starts_with('/') || path.contains('\0') {
            return Err(ConfineError::NotFile(location.to_owned()));
        }
        // Split by hand rather than with `Path::components`, which drops `.` silently.
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(ConfineError::DotSegment(location.to_owned()));
        }
        let below = [&self.canonical, &self.configured]
            .into_iter()
            .find_map(|root| strip_root(root, &parts))
            .ok_or_else(outside)?;
        match below.first() {
            Some(first) if *first == account => {}
            _ => return Err(outside()),
        }
        let mut fd = rustix::io::dup(&self.fd).map_err(io_error("open the export directory"))?;
        for (i, name) in below.iter().enumerate() {
            let shown = below[1..=i].join("/");
            let shown = if shown.is_empty() { (*name).to_owned() } else { shown };
            match rustix::fs::mkdirat(&fd, *name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io_error("create the destination folder")(e)),
            }
            fd = match rustix::fs::openat(&fd, *name, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    let is_link = rustix::fs::statat(&fd, *name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
                    });
                    return Err(if is_link {
                        ConfineError::Symlink(shown)
                    } else {
                        ConfineError::NotADirectory(shown)
                    });
                }
                Err(e) => return Err(io_error("open the destination folder")(e)),
            };
        }
        Ok(ConfinedDir { fd, location: location.to_owned() })
    }
}

/// A file a job reads (`FileRoot::resolve_source`): its name as shown to the caller (relative
/// to the location) and the open file.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub file: File,
}

/// Files one job reads from a folder, at most.
pub const MAX_SOURCE_FILES: usize = 10_000;

impl FileRoot {
    /// Opens what a job reads at `location` (`file:///…`) under `<root>/<account>/`, creating
    /// nothing: the file it names, or, for a folder (a location ending in `/`, or naming one),
    /// every regular file in it and in its subfolders, by name. The same confinement as
    /// [`FileRoot::resolve_dir`]: no `..`, nothing outside the account's folder, no symbolic
    /// link anywhere (a link found inside a folder is refused, not skipped).
    pub fn resolve_source(&self, account: &str, location: &str) -> Result<Vec<SourceFile>, ConfineError> {
        let outside =
            || ConfineError::Outside { location: location.to_owned(), allowed: self.account_location(account) };
        let path = location.strip_prefix("file://").ok_or_else(|| ConfineError::NotFile(location.to_owned()))?;
        if !path.starts_with('/') || path.contains('\0') {
            return Err(ConfineError::NotFile(location.to_owned()));
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(ConfineError::DotSegment(location.to_owned()));
        }
        let below = [&self.canonical, &self.configured]
            .into_iter()
            .find_map(|root| strip_root(root, &parts))
            .ok_or_else(outside)?;
        match below.first() {
            Some(first) if *first == account => {}
            _ => return Err(outside()),
        }
        let mut fd = rustix::io::dup(&self.fd).map_err(io_error("open the import directory"))?;
        for (i, name) in below.iter().enumerate() {
            let shown = below[1..=i].join("/");
            let shown = if shown.is_empty() { (*name).to_owned() } else { shown };
            let last = i + 1 == below.len();
            let st = match rustix::fs::statat(&fd, *name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => return Err(ConfineError::Missing(shown)),
                Err(e) => return Err(io_error("open the source")(e)),
            };
            match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::Symlink => return Err(ConfineError::Symlink(shown)),
                rustix::fs::FileType::Directory => {}
                rustix::fs::FileType::RegularFile if last && !path.ends_with('/') => {
                    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let file = rustix::fs::openat(&fd, *name, flags, Mode::empty())
                        .map_err(io_error("open the source file"))?;
                    let name = (*name).to_owned();
                    return Ok(vec![SourceFile { name, file: File::from(file) }]);
                }
                _ => return Err(ConfineError::NotADirectory(shown)),
            }
            fd =
                rustix::fs::openat(&fd, *name, DIR_FLAGS, Mode::empty()).map_err(io_error("open the source folder"))?;
        }
        let mut files = Vec::new();
        collect_files(fd, "", location, &mut files)?;
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

/// Every regular file below the folder `dir` (named from it with `prefix`), through no link.
fn collect_files(dir: OwnedFd, prefix: &str, location: &str, out: &mut Vec<SourceFile>) -> Result<(), ConfineError> {
    let mut entries = Vec::new();
    {
        let listing = rustix::io::dup(&dir).map_err(io_error("list the source folder"))?;
        let iter = rustix::fs::Dir::read_from(&listing).map_err(io_error("list the source folder"))?;
        for entry in iter {
            let entry = entry.map_err(io_error("list the source folder"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                entries.push(name);
            }
        }
    }
    entries.sort();
    for name in entries {
        let shown = format!("{prefix}{name}");
        let st =
            rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(io_error("open the source"))?;
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::RegularFile => {
                if out.len() >= MAX_SOURCE_FILES {
                    return Err(ConfineError::TooManyFiles { location: location.to_owned(), max: MAX_SOURCE_FILES });
                }
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let file = rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty())
                    .map_err(io_error("open the source file"))?;
                out.push(SourceFile { name: shown, file: File::from(file) });
            }
            rustix::fs::FileType::Directory => {
                let sub = rustix::fs::openat(&dir, name.as_str(), DIR_FLAGS, Mode::empty())
                    .map_err(io_error("open the source folder"))?;
                collect_files(sub, &format!("{shown}/"), location, out)?;
            }
            rustix::fs::FileType::Symlink => return Err(ConfineError::Symlink(shown)),
            _ => {}
        }
    }
    Ok(())
}

/// The components below `root`, if `parts` starts with all of root's.
fn strip_root<'a, 'p>(root: &Path, parts: &'a [&'p str]) -> Option<&'a [&'p str]> {
    let mut rest = parts;
    for component in root.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(c) => {
                let (first, tail) = rest.split_first()?;
                if std::ffi::OsStr::new(first) != c {
                    return None;
                }
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(rest)
}

fn check_name(name: &str) -> Result<(), ConfineError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ConfineError::BadName(name.to_owned()));
    }
    Ok(())
}

impl ConfinedDir {
    /// The location as the caller wrote it.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Creates `name` in this folder: new (never an existing file, never through a link),
    /// mode 0600.
    pub fn create_new(&self, name: &str) -> Result<File, ConfineError> {
        check_name(name)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => Ok(File::from(fd)),
            Err(rustix::io::Errno::EXIST) => Err(ConfineError::Exists(name.to_owned())),
            Err(e) => Err(io_error("create the export file")(e)),
        }
    }

    /// Gives `from` (made by [`ConfinedDir::create_new`]) its final name `to`, unless a file
    /// of that name exists: then nothing is replaced and `from` is removed.
    pub fn publish(&self, from: &str, to: &str) -> Result<(), ConfineError> {
        check_name(from)?;
        check_name(to)?;
        let linked = rustix::fs::linkat(&self.fd, from, &self.fd, to, AtFlags::empty());
        let _ = rustix::fs::unlinkat(&self.fd, from, AtFlags::empty());
        match linked {
            Ok(()) => rustix::fs::fsync(&self.fd).map_err(io_error("sync the destination folder")),
            Err(rustix::io::Errno::EXIST) => Err(ConfineError::Exists(to.to_owned())),
            Err(e) => Err(io_error("publish the export file")(e)),
        }
    }

    /// Removes `name` (a file this folder's owner made and gave up on).
    pub fn remove(&self, name: &str) {
        if check_name(name).is_ok() {
            let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const A: &str = "111111111111";
    const B: &str = "222222222222";

    fn root() -> (tempfile::TempDir, FileRoot) {
        let base = tempfile::tempdir().unwrap();
        let root = FileRoot::open(&base.path().join("exports")).unwrap();
        (base, root)
    }

    fn loc(root: &FileRoot, rest: &str) -> String {
        format!("file://{}/{rest}", root.path().display())
    }

    #[test]
    fn a_location_must_be_inside_the_accounts_folder() {
        let (base, root) = root();
        let ok = root.resolve_dir(A, &loc(&root, &format!("{A}/daily/2024/"))).unwrap();
        assert!(base.path().join(format!("exports/{A}/daily/2024")).is_dir());
        assert_eq!(ok.location(), loc(&root, &format!("{A}/daily/2024/")));
        root.resolve_dir(A, &loc(&root, A)).unwrap();
        for (location, want) in [
            ("file:///etc/".to_owned(), "outside"),
            (loc(&root, ""), "outside"),
            (loc(&root, &format!("{B}/x/")), "outside"),
            (loc(&root, &format!("{A}/../{B}/")), "'..'"),
            (loc(&root, &format!("{A}/./x/")), "'..'"),
            (format!("file://{}/../exports/{A}/", base.path().display()), "'..'"),
            ("file://relative/".to_owned(), "not a file:///"),
            ("s3://bucket/".to_owned(), "not a file:///"),
        ] {
            let e = root.resolve_dir(A, &location).unwrap_err();
            assert!(e.to_string().contains(want), "{location}: {e}");
        }
        let e = root.resolve_dir(A, "file:///etc/").unwrap_err().to_string();
        assert!(e.contains(&root.account_location(A)), "{e}");
    }

    #[test]
    fn symbolic_links_below_the_root_are_refused() {
        let (base, root) = root();
        let outside = base.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        root.resolve_dir(A, &loc(&root, A)).unwrap();
        std::os::unix::fs::symlink(&outside, base.path().join(format!("exports/{A}/link"))).unwrap();
        let e = root.resolve_dir(A, &loc(&root, &format!("{A}/link/sub/"))).unwrap_err();
        assert!(matches!(e, ConfineError::Symlink(ref c) if c == "link"), "{e:?}");
        std::fs::write(base.path().join(format!("exports/{A}/file")), b"").unwrap();
        let e = root.resolve_dir(A, &loc(&root, &format!("{A}/file/"))).unwrap_err();
        assert!(matches!(e, ConfineError::NotADirectory(_)), "{e:?}");
        // The account folder itself planted as a link.
        std::os::unix::fs::symlink(&outside, base.path().join(format!("exports/{B}"))).unwrap();
        let e = root.resolve_dir(B, &loc(&root, B)).unwrap_err();
        assert!(matches!(e, ConfineError::Symlink(_)), "{e:?}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing was created outside the root");
    }

    #[test]
    fn sources_are_read_inside_the_accounts_folder_only() {
        let (base, root) = root();
        let mine = base.path().join(format!("exports/{A}"));
        std::fs::create_dir_all(mine.join("batch/sub")).unwrap();
        std::fs::write(mine.join("users.csv"), b"USER_ID\nu1\n").unwrap();
        std::fs::write(mine.join("batch/b.csv"), b"b").unwrap();
        std::fs::write(mine.join("batch/sub/a.csv"), b"a").unwrap();
        let one = root.resolve_source(A, &loc(&root, &format!("{A}/users.csv"))).unwrap();
        assert_eq!(one.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["users.csv"]);
        let many = root.resolve_source(A, &loc(&root, &format!("{A}/batch/"))).unwrap();
        assert_eq!(many.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["b.csv", "sub/a.csv"]);
        let e = root.resolve_source(A, &loc(&root, &format!("{A}/missing.csv"))).unwrap_err();
        assert!(matches!(e, ConfineError::Missing(ref c) if c == "missing.csv"), "{e:?}");
        assert!(!mine.join("missing.csv").exists(), "nothing is created");
        let e = root.resolve_source(A, &loc(&root, &format!("{A}/users.csv/"))).unwrap_err();
        assert!(matches!(e, ConfineError::NotADirectory(_)), "{e:?}");
        let e = root.resolve_source(B, &loc(&root, &format!("{A}/users.csv"))).unwrap_err();
        assert!(matches!(e, ConfineError::Outside { .. }), "{e:?}");
        let outside = base.path().join("secret.csv");
        std::fs::write(&outside, b"USER_ID\nx\n").unwrap();
        std::os::unix::fs::symlink(&outside, mine.join("link.csv")).unwrap();
        let e = root.resolve_source(A, &loc(&root, &format!("{A}/link.csv"))).unwrap_err();
        assert!(matches!(e, ConfineError::Symlink(_)), "{e:?}");
        // A link inside a folder read whole is refused too, not skipped.
        std::os::unix::fs::symlink(&outside, mine.join("batch/sub/z.csv")).unwrap();
        let e = root.resolve_source(A, &loc(&root, &format!("{A}/batch/"))).unwrap_err();
        assert!(matches!(e, ConfineError::Symlink(ref c) if c == "sub/z.csv"), "{e:?}");
    }

    #[test]
    fn files_are_new_private_and_never_replace_anything() {
        let (base, root) = root();
        let dir = root.resolve_dir(A, &loc(&root, A)).unwrap();
        let victim = base.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, base.path().join(format!("exports/{A}/job.csv.partial"))).unwrap();
        assert!(matches!(dir.create_new("job.csv.partial"), Err(ConfineError::Exists(_))));
        let mut f = dir.create_new("job.tmp").unwrap();
        f.write_all(b"rows").unwrap();
        let path = base.path().join(format!("exports/{A}/job.tmp"));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(base.path().join(format!("exports/{A}/job.csv")), b"older").unwrap();
        assert!(matches!(dir.publish("job.tmp", "job.csv"), Err(ConfineError::Exists(_))));
        assert_eq!(std::fs::read(base.path().join(format!("exports/{A}/job.csv"))).unwrap(), b"older");
        assert!(!path.exists(), "the temporary file is removed");
        let mut f = dir.create_new("other.tmp").unwrap();
        f.write_all(b"rows").unwrap();
        dir.publish("other.tmp", "other.csv").unwrap();
        assert_eq!(std::fs::read(base.path().join(format!("exports/{A}/other.csv"))).unwrap(), b"rows");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(matches!(dir.create_new("../x"), Err(ConfineError::BadName(_))));
    }
}
