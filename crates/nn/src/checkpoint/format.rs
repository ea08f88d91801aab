//! The safetensors byte layout: a deterministic encoder for F32 matrices and string metadata, and a
//! validating decoder built on the `safetensors` crate's parser.
//!
//! The encoder writes the header itself because `safetensors::serialize` takes the metadata as a
//! `HashMap`, whose iteration order (and so the bytes written) changes from run to run. The header
//! is exactly what that function writes for the same input (keys escaped as `serde_json` does,
//! padded with spaces to a multiple of 8); only the order of the metadata entries is fixed, sorted.

use std::collections::BTreeMap;
use std::fmt::Write;

use safetensors::{Dtype, SafeTensorError, SafeTensors, tensor::Metadata};

use super::ErrorKind;

/// `(rows, cols)` of a matrix.
pub(super) type Shape = (usize, usize);

/// A row-major F32 tensor to write.
pub(super) type Tensor<'a> = (Shape, &'a [f32]);

/// Header length prefix: a little-endian u64.
const N_LEN: usize = 8;

/// The bytes of a safetensors file holding `tensors` (in name order, all F32) and `metadata`.
pub(super) fn encode(
    tensors: &BTreeMap<String, Tensor<'_>>,
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = String::from("{");
    if !metadata.is_empty() {
        header.push_str("\"__metadata__\":{");
        for (k, (key, value)) in metadata.iter().enumerate() {
            if k > 0 {
                header.push(',');
            }
            push_json_string(&mut header, key);
            header.push(':');
            push_json_string(&mut header, value);
        }
        header.push('}');
    }
    let mut offset = 0;
    for (k, (name, ((rows, cols), data))) in tensors.iter().enumerate() {
        debug_assert_eq!(rows * cols, data.len());
        if k > 0 || !metadata.is_empty() {
            header.push(',');
        }
        push_json_string(&mut header, name);
        let end = offset + 4 * data.len();
        write!(
            header,
            ":{{\"dtype\":\"F32\",\"shape\":[{rows},{cols}],\"data_offsets\":[{offset},{end}]}}"
        )
        .expect("writing to a String cannot fail");
        offset = end;
    }
    header.push('}');
    let padded = header.len().next_multiple_of(N_LEN);
    let mut bytes = Vec::with_capacity(N_LEN + padded + offset);
    bytes.extend((padded as u64).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.resize(N_LEN + padded, b' ');
    for (_, data) in tensors.values() {
        for x in data.iter() {
            bytes.extend(x.to_le_bytes());
        }
    }
    bytes
}

/// `s` as a JSON string, escaped as `serde_json` escapes it.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a String cannot fail")
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A parsed safetensors file: its header and its data section.
pub(super) struct File<'a> {
    header: Metadata,
    data: &'a [u8],
}

impl<'a> File<'a> {
    /// Parses the header of `bytes` and checks that the data section is exactly what it declares.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, ErrorKind> {
        let (n, header) = SafeTensors::read_metadata(bytes).map_err(|e| describe(e, bytes))?;
        // `read_metadata` checked that the data section is exactly as long as the header says.
        let data = &bytes[N_LEN + n..];
        Ok(File { header, data })
    }

    /// The string metadata (`__metadata__`), sorted.
    pub(super) fn metadata(&self) -> BTreeMap<String, String> {
        self.header
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The tensors named in `expected`, checked and decoded.
    ///
    /// Checks, reporting the first failure: every expected name in name order (present, F32, of
    /// the expected shape), then every name in the file in name order (expected, or `ignored`).
    pub(super) fn tensors(
        &self,
        expected: &BTreeMap<String, Shape>,
        ignored: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Vec<f32>>, ErrorKind> {
        let mut tensors = BTreeMap::new();
        for (name, &(rows, cols)) in expected {
            let info = self
                .header
                .info(name)
                .ok_or_else(|| ErrorKind::MissingTensor(name.clone()))?;
            if info.dtype != Dtype::F32 {
                return Err(ErrorKind::Dtype {
                    name: name.clone(),
                    found: format!("{:?}", info.dtype),
                });
            }
            if info.shape[..] != [rows, cols] {
                return Err(ErrorKind::Shape {
                    name: name.clone(),
                    expected: [rows, cols],
                    found: info.shape.clone(),
                });
            }
            let (start, end) = info.data_offsets;
            let values = self.data[start..end]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name.clone(), values);
        }
        let mut names = self.header.offset_keys();
        names.sort();
        if let Some(extra) = names
            .into_iter()
            .find(|name| !expected.contains_key(name) && !ignored(name))
        {
            return Err(ErrorKind::UnexpectedTensor(extra));
        }
        Ok(tensors)
    }
}

/// A parse failure of the `safetensors` crate, said in terms of the file.
fn describe(error: SafeTensorError, bytes: &[u8]) -> ErrorKind {
    let len = bytes.len();
    let declared = bytes
        .get(..N_LEN)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match error {
        SafeTensorError::HeaderTooSmall => ErrorKind::Truncated(format!(
            "{len} bytes, shorter than the 8-byte header length"
        )),
        SafeTensorError::HeaderTooLarge => ErrorKind::Corrupt(format!(
            "the header length {} is over the 100 MB limit (garbage bytes?)",
            declared.unwrap_or(0)
        )),
        SafeTensorError::InvalidHeaderLength => ErrorKind::Truncated(format!(
            "the header declares {} bytes of JSON, but only {} bytes follow its length",
            declared.unwrap_or(0),
            len.saturating_sub(N_LEN)
        )),
        SafeTensorError::MetadataIncompleteBuffer => {
            let n = declared.unwrap_or(0) as usize;
            let present = len - N_LEN - n;
            match declared_data_len(&bytes[N_LEN..N_LEN + n]) {
                Some(end) if end > present => ErrorKind::Truncated(format!(
                    "the header declares {end} bytes of tensor data, but only {present} follow it"
                )),
                Some(end) => ErrorKind::Corrupt(format!(
                    "{} bytes follow the {end} bytes of tensor data the header declares",
                    present - end
                )),
                None => ErrorKind::Corrupt(format!(
                    "the file's {len} bytes do not hold exactly the tensor data its header declares"
                )),
            }
        }
        SafeTensorError::InvalidHeader(e) => {
            ErrorKind::Corrupt(format!("the header is not UTF-8 ({e})"))
        }
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            ErrorKind::Corrupt(format!("the header is not safetensors JSON ({e})"))
        }
        other => ErrorKind::Corrupt(other.to_string()),
    }
}

/// The length of the data section a (valid, compact) header declares: the largest end of its
/// `data_offsets`. The pattern cannot occur inside a JSON string, where `"` is escaped.
fn declared_data_len(header: &[u8]) -> Option<usize> {
    let header = std::str::from_utf8(header).ok()?;
    let pattern = "\"data_offsets\":[";
    header
        .match_indices(pattern)
        .filter_map(|(i, _)| {
            let offsets = header[i + pattern.len()..].split(']').next()?;
            offsets.split(',').nth(1)?.trim().parse::<usize>().ok()
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use std::collections::HashMap;

    fn le_bytes(data: &[f32]) -> Vec<u8> {
        data.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn encoding_equals_the_safetensors_crate_for_one_metadata_entry() {
        // With a single metadata entry the crate's HashMap order is fixed, so its bytes are the
        // reference; the key and value exercise every kind of JSON escape.
        let (a, b) = ([1.5f32, -2.0, 0.25, 8.0, 0.0, -0.0], [3.0f32]);
        let key = "note \"q\" \\ \t\n\r\u{8}\u{c}\u{1}\u{1f} é".to_string();
        let value = "ü / \u{7f}".to_string();
        let ours = encode(
            &BTreeMap::from([
                ("b.x".to_string(), ((1, 1), &b[..])),
                ("a".to_string(), ((2, 3), &a[..])),
            ]),
            &BTreeMap::from([(key.clone(), value.clone())]),
        );
        let (a_bytes, b_bytes) = (le_bytes(&a), le_bytes(&b));
        let views = [
            (
                "b.x",
                TensorView::new(Dtype::F32, vec![1, 1], &b_bytes).unwrap(),
            ),
            (
                "a",
                TensorView::new(Dtype::F32, vec![2, 3], &a_bytes).unwrap(),
            ),
        ];
        let theirs = safetensors::serialize(
            views.iter().map(|(n, v)| (*n, v)),
            Some(HashMap::from([(key, value)])),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
        assert_eq!(ours, theirs);
    }

    #[test]
    fn encoding_without_metadata_equals_the_safetensors_crate() {
        let a = [1.0f32, 2.0];
        let ours = encode(
            &BTreeMap::from([("w".to_string(), ((1, 2), &a[..]))]),
            &BTreeMap::new(),
        );
        let bytes = le_bytes(&a);
        let view = TensorView::new(Dtype::F32, vec![1, 2], &bytes).unwrap();
        assert_eq!(ours, safetensors::serialize([("w", &view)], None).unwrap());
    }

    #[test]
    fn short_and_long_data_sections_are_told_apart() {
        let w = [1.0f32, 2.0, 3.0];
        let bytes = encode(
            &BTreeMap::from([("w".to_string(), ((1, 3), &w[..]))]),
            &BTreeMap::new(),
        );
        // 3 floats: 12 bytes of data, declared as data_offsets [0, 12].
        let message = |b: &[u8]| File::parse(b).err().unwrap().to_string();
        assert_eq!(
            message(&bytes[..bytes.len() - 5]),
            "truncated: the header declares 12 bytes of tensor data, but only 7 follow it"
        );
        let mut long = bytes.clone();
        long.extend([0; 3]);
        assert_eq!(
            message(&long),
            "not a safetensors file: 3 bytes follow the 12 bytes of tensor data the header declares"
        );
    }

    #[test]
    fn parse_decodes_what_encode_wrote() {
        let w = [1.0f32, -2.0, 3.5, 4.0];
        let bytes = encode(
            &BTreeMap::from([("w".to_string(), ((2, 2), &w[..]))]),
            &BTreeMap::from([("epoch".to_string(), "3".to_string())]),
        );
        let file = File::parse(&bytes).unwrap();
        assert_eq!(file.metadata()["epoch"], "3");
        let tensors = file
            .tensors(&BTreeMap::from([("w".to_string(), (2, 2))]), |_| false)
            .unwrap();
        assert_eq!(tensors["w"], w);
    }
}
