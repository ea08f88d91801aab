//! Test helpers: unique temporary folders and small hand-built IDX gz files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;

/// A fresh folder under the system temp dir, removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `henbun-<tag>-<pid>-<n>` under `std::env::temp_dir()`.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("henbun-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` inside the folder and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An uncompressed IDX file: the big-endian magic, the big-endian dimensions, then `body`.
pub fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(body);
    bytes
}

/// `bytes` gzip-compressed.
pub fn write_gz(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// Writes a valid images + labels pair (`count` images of `h × w`, pixel `i` of the whole body
/// equal to `i mod 256`, label `i mod 10`) under the standard names with the given `prefix`
/// (`train` or `t10k`).
pub fn write_split(dir: &Path, prefix: &str, count: u32, (h, w): (u32, u32)) {
    let pixels: Vec<u8> = (0..count * h * w).map(|i| (i % 256) as u8).collect();
    let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
    let images = write_gz(&idx_bytes(2051, &[count, h, w], &pixels));
    let labels = write_gz(&idx_bytes(2049, &[count], &labels));
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte.gz")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), labels).unwrap();
}
