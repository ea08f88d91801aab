//! Crash-safe file replacement: write a synced temporary file beside the target, then rename it
//! over the target and sync the directory, so that the target is always either the old file or
//! the new one, never a part of either.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temporary names unique within the process (the pid makes them unique across processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` by `bytes`, atomically.
pub(super) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = write_temp(path, bytes)?;
    commit(&temp, path)
}

/// Phase one: `bytes` in a new file `.<name>.tmp-<pid>-<n>` in the target's directory, synced to
/// disk, with the permissions of any new file (0666 less the umask, typically 0644). Removed again
/// on failure.
pub(super) fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let temp = directory(path).join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            // Best effort: the write already failed, and that is the error to report.
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Phase two: renames the temporary file over `path` and syncs the directory, so that the rename
/// itself survives a crash.
pub(super) fn commit(temp: &Path, path: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(temp, path) {
        let _ = fs::remove_file(temp);
        return Err(e);
    }
    sync_directory(directory(path))
}

/// The directory holding `path` (`.` for a bare file name).
fn directory(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(unix)]
fn sync_directory(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Directories cannot be opened as files here; the rename is as durable as the platform makes it.
#[cfg(not(unix))]
fn sync_directory(_dir: &Path) -> io::Result<()> {
    Ok(())
}
