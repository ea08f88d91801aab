//! IDX files in gzip (the MNIST format): validated, size-capped reading of images and labels.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};
use flate2::read::GzDecoder;

use super::error::{DataError, Problem};
use super::kind::IdxKind;

/// The largest decompressed IDX body accepted, in bytes (1 GiB; MNIST's largest is 47,040,000).
pub const MAX_BODY_BYTES: usize = 1 << 30;

/// The first two bytes of every gzip file.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The number of distinct labels (digits 0–9, or Fashion-MNIST's ten garment classes).
pub const NUM_CLASSES: usize = 10;

/// The images of one IDX file: `count` images of `height × width` pixels, row-major, one byte each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// `count · height · width` pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
}

/// Reads a gzip-compressed IDX images file (magic 2051, rank 3), checking every header field and
/// that the body has exactly the declared size.
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let (dims, pixels) = read_idx(path, IdxKind::Images)?;
    Ok(images(dims, pixels))
}

/// Reads a gzip-compressed IDX labels file (magic 2049, rank 1), checking every header field, the
/// body size, and that each label is below [`NUM_CLASSES`].
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let (_, labels) = read_idx(path, IdxKind::Labels)?;
    check_labels(labels).map_err(|problem| DataError::new(path, problem))
}

/// [`read_images`] of a file's bytes already in memory (the same checks, the same caps).
pub fn parse_images(gz: &[u8]) -> Result<IdxImages, Problem> {
    let (dims, pixels) = parse_gz(gz, IdxKind::Images)?;
    Ok(images(dims, pixels))
}

/// [`read_labels`] of a file's bytes already in memory (the same checks, the same caps).
pub fn parse_labels(gz: &[u8]) -> Result<Vec<u8>, Problem> {
    let (_, labels) = parse_gz(gz, IdxKind::Labels)?;
    check_labels(labels)
}

fn images(dims: Vec<u32>, pixels: Vec<u8>) -> IdxImages {
    IdxImages {
        pixels,
        count: dims[0] as usize,
        height: dims[1] as usize,
        width: dims[2] as usize,
    }
}

/// `labels` if each is below [`NUM_CLASSES`].
fn check_labels(labels: Vec<u8>) -> Result<Vec<u8>, Problem> {
    match labels.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        Some(index) => Err(Problem::LabelOutOfRange {
            index,
            label: labels[index],
        }),
        None => Ok(labels),
    }
}

/// Checks the gzip magic of `gz` and parses the inflated stream as IDX of `kind`.
fn parse_gz(gz: &[u8], kind: IdxKind) -> Result<(Vec<u32>, Vec<u8>), Problem> {
    if !gz.starts_with(&GZIP_MAGIC) {
        return Err(Problem::NotGzip {
            found: gz[..gz.len().min(2)].to_vec(),
        });
    }
    parse_idx(GzDecoder::new(gz), kind)
}

/// Opens `path`, checks the gzip magic, and parses the inflated stream as IDX of `kind`:
/// returns the header's dimensions and the body.
fn read_idx(path: &Path, kind: IdxKind) -> Result<(Vec<u32>, Vec<u8>), DataError> {
    let fail = |problem| DataError::new(path, problem);
    let mut file = File::open(path).map_err(|e| fail(Problem::Io(e)))?;
    let mut magic = Vec::with_capacity(2);
    (&mut file)
        .take(2)
        .read_to_end(&mut magic)
        .map_err(|e| fail(Problem::Io(e)))?;
    if magic != GZIP_MAGIC {
        return Err(fail(Problem::NotGzip { found: magic }));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| fail(Problem::Io(e)))?;
    parse_idx(GzDecoder::new(BufReader::new(file)), kind).map_err(fail)
}

/// Parses an inflated IDX stream of `kind`. Never reads more than one byte past the size the
/// header declares, and never accepts a declared size above [`MAX_BODY_BYTES`], so a gzip bomb
/// costs at most that much.
fn parse_idx(mut stream: impl Read, kind: IdxKind) -> Result<(Vec<u32>, Vec<u8>), Problem> {
    let magic_bytes = read_at_most(&mut stream, 4)?;
    if magic_bytes.len() < 4 {
        return Err(Problem::TruncatedHeader {
            found: magic_bytes.len(),
            expected: 4,
        });
    }
    check_magic(BigEndian::read_u32(&magic_bytes), kind)?;

    let header_len = 4 + 4 * usize::from(kind.rank());
    let dim_bytes = read_at_most(&mut stream, header_len - 4)?;
    if dim_bytes.len() < header_len - 4 {
        return Err(Problem::TruncatedHeader {
            found: 4 + dim_bytes.len(),
            expected: header_len,
        });
    }
    let dims: Vec<u32> = dim_bytes.chunks_exact(4).map(BigEndian::read_u32).collect();
    if dims.contains(&0) {
        return Err(Problem::ZeroDimension { dims });
    }
    let expected = match dims
        .iter()
        .try_fold(1usize, |size, &d| size.checked_mul(d as usize))
    {
        Some(size) if size <= MAX_BODY_BYTES => size,
        _ => {
            return Err(Problem::TooLarge {
                dims,
                cap: MAX_BODY_BYTES,
            });
        }
    };

    let body = read_at_most(&mut stream, expected + 1)?;
    if body.len() < expected {
        return Err(Problem::ShortBody {
            found: body.len(),
            expected,
        });
    }
    if body.len() > expected {
        return Err(Problem::TrailingBytes { expected });
    }
    Ok((dims, body))
}

/// Accepts exactly `kind`'s magic. Another unsigned-byte IDX rank that is neither kind's (e.g.
/// 2050, rank 2) is a wrong rank; anything else, including the other kind's magic, is a wrong magic.
fn check_magic(magic: u32, kind: IdxKind) -> Result<(), Problem> {
    let other = match kind {
        IdxKind::Images => IdxKind::Labels,
        IdxKind::Labels => IdxKind::Images,
    };
    if magic == kind.magic() {
        Ok(())
    } else if magic & 0xffff_ff00 == 0x0800 && magic != other.magic() {
        Err(Problem::WrongRank {
            found: magic as u8,
            kind,
        })
    } else {
        Err(Problem::WrongMagic { found: magic, kind })
    }
}

/// Reads until `limit` bytes or the end of the stream, whichever comes first; a failure of the
/// stream (a corrupt or truncated gzip member, a bad checksum) is [`Problem::Gzip`].
fn read_at_most(stream: &mut impl Read, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut buf = Vec::with_capacity(limit.min(64 << 20));
    stream
        .take(limit as u64)
        .read_to_end(&mut buf)
        .map_err(Problem::Gzip)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::{TempDir, idx_bytes, write_gz};
    use std::io;

    /// A 2-image 2×3 images file: pixels 0..12.
    fn tiny_images() -> Vec<u8> {
        idx_bytes(2051, &[2, 2, 3], &(0..12).collect::<Vec<u8>>())
    }

    fn images_problem(dir: &TempDir, name: &str, gz: &[u8]) -> DataError {
        let path = dir.write(name, gz);
        read_images(&path).expect_err("must be rejected")
    }

    #[test]
    fn reads_a_valid_images_file() {
        let dir = TempDir::new("idx-valid");
        let path = dir.write("img.gz", &write_gz(&tiny_images()));
        let images = read_images(&path).unwrap();
        // dims [2, 2, 3] from the header; pixels 0..12 as written.
        assert_eq!((images.count, images.height, images.width), (2, 2, 3));
        assert_eq!(images.pixels, (0..12).collect::<Vec<u8>>());
    }

    #[test]
    fn reads_a_valid_labels_file() {
        let dir = TempDir::new("idx-labels");
        let path = dir.write("lab.gz", &write_gz(&idx_bytes(2049, &[3], &[0, 9, 4])));
        assert_eq!(read_labels(&path).unwrap(), vec![0, 9, 4]);
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = TempDir::new("idx-missing");
        let path = dir.path().join("nope-images-idx3-ubyte.gz");
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err.problem, Problem::Io(ref e) if e.kind() == io::ErrorKind::NotFound));
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read", path.display()))
        );
    }

    #[test]
    fn not_gzip() {
        let dir = TempDir::new("idx-not-gzip");
        // The raw (uncompressed) IDX starts with the magic's bytes 00 00.
        let err = images_problem(&dir, "raw.gz", &tiny_images());
        assert!(matches!(err.problem, Problem::NotGzip { ref found } if found == &[0, 0]));
        assert!(
            err.to_string()
                .ends_with("not a gzip file: starts with 00 00, expected 1f 8b")
        );
        let err = images_problem(&dir, "empty.gz", &[]);
        assert!(matches!(err.problem, Problem::NotGzip { ref found } if found.is_empty()));
    }

    #[test]
    fn corrupt_gzip_stream() {
        let dir = TempDir::new("idx-corrupt");
        let gz = write_gz(&tiny_images());
        // Garbage after the 10-byte gzip header: the deflate stream cannot be inflated.
        let mut garbage = gz[..10].to_vec();
        garbage.extend_from_slice(&[0xff; 40]);
        let err = images_problem(&dir, "garbage.gz", &garbage);
        assert!(matches!(err.problem, Problem::Gzip(_)), "{err}");
        // Cut off inside the deflate stream: incomplete.
        let err = images_problem(&dir, "cut.gz", &gz[..gz.len() - 12]);
        assert!(matches!(err.problem, Problem::Gzip(_)), "{err}");
        // A flipped byte in the CRC-32 trailer (the last 8 bytes are CRC-32 then size).
        let mut bad_crc = gz.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 0xff;
        let err = images_problem(&dir, "crc.gz", &bad_crc);
        assert!(matches!(err.problem, Problem::Gzip(_)), "{err}");
    }

    #[test]
    fn wrong_magic() {
        let dir = TempDir::new("idx-magic");
        // A labels file (2049) read as images.
        let labels = write_gz(&idx_bytes(2049, &[3], &[1, 2, 3]));
        let path = dir.write("train-images-idx3-ubyte.gz", &labels);
        let err = read_images(&path).unwrap_err();
        assert!(matches!(
            err.problem,
            Problem::WrongMagic {
                found: 2049,
                kind: IdxKind::Images
            }
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: IDX magic is 2049, expected 2051 (images)",
                path.display()
            )
        );
        // Not an unsigned-byte IDX at all: type byte 0x0d (float) with rank 3 is 0x0d03 = 3331.
        let err = images_problem(
            &dir,
            "f.gz",
            &write_gz(&idx_bytes(0x0d03, &[1, 1, 1], &[0; 4])),
        );
        assert!(matches!(
            err.problem,
            Problem::WrongMagic { found: 3331, .. }
        ));
    }

    #[test]
    fn wrong_rank() {
        let dir = TempDir::new("idx-rank");
        // 0x0802 = 2050: unsigned bytes, rank 2.
        let err = images_problem(&dir, "r2.gz", &write_gz(&idx_bytes(2050, &[2, 2], &[0; 4])));
        assert!(matches!(
            err.problem,
            Problem::WrongRank {
                found: 2,
                kind: IdxKind::Images
            }
        ));
        assert!(
            err.to_string()
                .ends_with("IDX rank is 2, expected 3 (images)")
        );
    }

    #[test]
    fn truncated_header() {
        let dir = TempDir::new("idx-header");
        // Magic and one of the three dimensions: 8 of 16 header bytes.
        let err = images_problem(&dir, "h.gz", &write_gz(&idx_bytes(2051, &[1], &[])));
        assert!(matches!(
            err.problem,
            Problem::TruncatedHeader {
                found: 8,
                expected: 16
            }
        ));
        let err = images_problem(&dir, "m.gz", &write_gz(&[0, 0]));
        assert!(matches!(
            err.problem,
            Problem::TruncatedHeader {
                found: 2,
                expected: 4
            }
        ));
    }

    #[test]
    fn zero_dimensions() {
        let dir = TempDir::new("idx-zero");
        for dims in [[0, 28, 28], [1, 0, 28], [1, 28, 0]] {
            let err = images_problem(&dir, "z.gz", &write_gz(&idx_bytes(2051, &dims, &[])));
            assert!(matches!(err.problem, Problem::ZeroDimension { dims: ref d } if d == &dims));
        }
    }

    #[test]
    fn overflowing_and_oversized_dimensions() {
        let dir = TempDir::new("idx-huge");
        // (2³²-1)³ ≈ 7.9e28 overflows a 64-bit usize.
        let max = u32::MAX;
        let err = images_problem(
            &dir,
            "o.gz",
            &write_gz(&idx_bytes(2051, &[max, max, max], &[])),
        );
        assert!(matches!(err.problem, Problem::TooLarge { .. }));
        // 2¹⁰·2¹⁰·2¹⁰ + 1 row more than the 2³⁰-byte cap: 1025·1024·1024 = 2³⁰ + 2²⁰ bytes.
        let err = images_problem(
            &dir,
            "c.gz",
            &write_gz(&idx_bytes(2051, &[1025, 1024, 1024], &[])),
        );
        assert!(matches!(
            err.problem,
            Problem::TooLarge {
                cap: MAX_BODY_BYTES,
                ..
            }
        ));
    }

    #[test]
    fn short_body() {
        let dir = TempDir::new("idx-short");
        // 2·2·3 = 12 bytes declared, 11 present.
        let bytes = tiny_images();
        let err = images_problem(&dir, "s.gz", &write_gz(&bytes[..bytes.len() - 1]));
        assert!(matches!(
            err.problem,
            Problem::ShortBody {
                found: 11,
                expected: 12
            }
        ));
    }

    #[test]
    fn trailing_bytes() {
        let dir = TempDir::new("idx-trailing");
        let mut bytes = tiny_images();
        bytes.push(0);
        let err = images_problem(&dir, "t.gz", &write_gz(&bytes));
        assert!(matches!(
            err.problem,
            Problem::TrailingBytes { expected: 12 }
        ));
    }

    #[test]
    fn gzip_bomb_stops_at_the_declared_size() {
        let dir = TempDir::new("idx-bomb");
        // Declares one 2×2 image (4 bytes) but inflates to 64 MiB of zeros (~64 KiB of gzip).
        let mut bytes = idx_bytes(2051, &[1, 2, 2], &[]);
        bytes.resize(bytes.len() + (64 << 20), 0);
        let err = images_problem(&dir, "bomb.gz", &write_gz(&bytes));
        assert!(matches!(
            err.problem,
            Problem::TrailingBytes { expected: 4 }
        ));
    }

    /// Counts the bytes pulled from an endless stream, to show where parsing stops.
    struct Counting<R> {
        inner: R,
        count: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.count += n;
            Ok(n)
        }
    }

    #[test]
    fn endless_stream_is_read_one_byte_past_the_declared_size() {
        let header = idx_bytes(2051, &[3, 4, 5], &[]);
        let mut stream = Counting {
            inner: header.as_slice().chain(io::repeat(7)),
            count: 0,
        };
        let problem = parse_idx(&mut stream, IdxKind::Images).unwrap_err();
        // 3·4·5 = 60 body bytes declared; the reader stops at 16 (header) + 60 + 1.
        assert!(matches!(problem, Problem::TrailingBytes { expected: 60 }));
        assert_eq!(stream.count, 16 + 60 + 1);
    }

    #[test]
    fn label_out_of_range() {
        let dir = TempDir::new("idx-label");
        let path = dir.write("l.gz", &write_gz(&idx_bytes(2049, &[4], &[0, 9, 10, 3])));
        let err = read_labels(&path).unwrap_err();
        assert!(matches!(
            err.problem,
            Problem::LabelOutOfRange {
                index: 2,
                label: 10
            }
        ));
        assert!(
            err.to_string()
                .ends_with("label 10 at index 2 is outside 0-9")
        );
    }
}
