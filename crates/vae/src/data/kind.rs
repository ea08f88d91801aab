//! Which of the two unsigned-byte IDX layouts a file has ([`IdxKind`]): what the reader checks
//! and the errors name.

use std::fmt;

/// Which of the two unsigned-byte IDX layouts a file must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    /// Rank 3: `count × height × width` pixels; magic 2051 (`00 00 08 03`).
    Images,
    /// Rank 1: `count` labels; magic 2049 (`00 00 08 01`).
    Labels,
}

impl IdxKind {
    /// The number of dimensions in the header.
    pub fn rank(self) -> u8 {
        match self {
            IdxKind::Images => 3,
            IdxKind::Labels => 1,
        }
    }

    /// The magic number: two zero bytes, the type byte `0x08` (unsigned byte), the rank.
    pub fn magic(self) -> u32 {
        0x0800 | u32::from(self.rank())
    }
}

impl fmt::Display for IdxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        })
    }
}
