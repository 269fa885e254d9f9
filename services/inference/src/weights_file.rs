//! The safetensors reader. Written out rather than taken from the
//! `safetensors` crate or candle's `MmapedSafetensors`: both hand back a
//! whole file's bytes (read into memory, or mapped, where every page touched
//! stays resident until unmapped), while loading here keeps only what the
//! model uses, converted as it is read: one base layer at a time (each freed
//! once quantised, see `Network::assemble`), the f16 word embeddings
//! straight from f32 chunks, and of a pruned vocabulary only its rows. That
//! is what lowered the loading peak (docs/performance.md); reading the
//! header (a length and a JSON map of names to dtype, shape and byte range)
//! is the small part.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::ModelError;

/// Loads every tensor of a safetensors file as f32 on the CPU.
pub fn load_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    load_safetensors_as(path, |_| Some(DType::F32))
}

/// Loads the tensors `keep` names a dtype for (F32 or F16), converting
/// from the file's F32, F16, BF16 or U8. Reads in chunks rather than mapping
/// the file, so peak memory is what is kept (plus a chunk), not the file
/// and its copy: at inference the f16 embedding table is half the f32
/// one, and a student skips the base's layers.
pub fn load_safetensors_as(
    path: &Path,
    keep: impl Fn(&str) -> Option<DType>,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut file = SafetensorsFile::open(path)?;
    let mut out = HashMap::new();
    let names: Vec<String> = file.tensors.keys().cloned().collect();
    for name in names {
        let Some(want) = keep(&name) else { continue };
        let info = file.tensors[&name].clone();
        let count: usize = info.shape.iter().product();
        let mut values = ValuesOf::new(want, count)?;
        file.read_values(&info, 0, count, &mut values)?;
        out.insert(name, values.into_tensor(&info.shape)?);
    }
    Ok(out)
}

/// Rows `rows` (ascending) of the 2-D tensor `name`, as `dtype`: a pruned
/// vocabulary's embeddings, read without the rest of the table.
pub fn load_rows(
    path: &Path,
    name: &str,
    rows: &[u32],
    dtype: DType,
) -> Result<Tensor, ModelError> {
    let mut file = SafetensorsFile::open(path)?;
    let info =
        file.tensors.get(name).cloned().ok_or_else(|| {
            ModelError::Format(format!("{}: lacks tensor {name}", path.display()))
        })?;
    let [n, width] = info.shape[..] else {
        return Err(ModelError::Format(format!(
            "{}: {name} is not a matrix",
            path.display()
        )));
    };
    let mut values = ValuesOf::new(dtype, rows.len() * width)?;
    for &row in rows {
        if row as usize >= n {
            return Err(ModelError::Format(format!(
                "{}: row {row} of {name}, which has {n}",
                path.display()
            )));
        }
        file.read_values(&info, row as usize * width, width, &mut values)?;
    }
    Ok(values.into_tensor(&[rows.len(), width])?)
}

/// A safetensors file's header, its tensors read on demand.
struct SafetensorsFile<'a> {
    path: &'a Path,
    file: std::fs::File,
    data_start: u64,
    tensors: HashMap<String, TensorInfo>,
}

impl<'a> SafetensorsFile<'a> {
    fn open(path: &'a Path) -> Result<Self, ModelError> {
        use std::io::Read;
        if !path.exists() {
            return Err(ModelError::MissingFile(path.to_path_buf()));
        }
        let bad = |what: String| ModelError::Format(format!("{}: {what}", path.display()));
        let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len)
            .map_err(|e| ModelError::io(path, e))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > 100 << 20 {
            return Err(bad(format!("header of {header_len} bytes")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| ModelError::io(path, e))?;
        let mut header: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
        header.remove("__metadata__");
        let tensors = header
            .into_iter()
            .map(|(name, entry)| {
                let info: TensorInfo = serde_json::from_value(entry)
                    .map_err(|e| bad(format!("tensor {name}: {e}")))?;
                let count: usize = info.shape.iter().product();
                let [begin, end] = info.data_offsets;
                if end < begin || end - begin != (count * info.width()?) as u64 {
                    return Err(bad(format!(
                        "tensor {name}: data offsets do not match its shape"
                    )));
                }
                Ok((name, info))
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Self {
            path,
            file,
            data_start: 8 + header_len,
            tensors,
        })
    }

    /// Appends `count` values of the tensor `info` describes, from element `first` on.
    fn read_values(
        &mut self,
        info: &TensorInfo,
        first: usize,
        count: usize,
        values: &mut ValuesOf,
    ) -> Result<(), ModelError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path;
        let width = info.width()?;
        let at = self.data_start + info.data_offsets[0] + (first * width) as u64;
        self.file
            .seek(SeekFrom::Start(at))
            .map_err(|e| ModelError::io(path, e))?;
        // Picked once per tensor, not matched per value (118 M of them in the
        // base encoder).
        let decode: fn(&[u8]) -> f32 = match info.dtype.as_str() {
            "F32" => |x| f32::from_le_bytes(x.try_into().expect("4 bytes")),
            "F16" => |x| half::f16::from_le_bytes(x.try_into().expect("2 bytes")).to_f32(),
            "BF16" => |x| half::bf16::from_le_bytes(x.try_into().expect("2 bytes")).to_f32(),
            _ => |x| f32::from(x[0]),
        };
        let mut chunk = vec![0u8; ((1 << 20) * width).min(count * width)];
        let mut left = count * width;
        while left > 0 {
            let n = left.min(chunk.len());
            self.file
                .read_exact(&mut chunk[..n])
                .map_err(|e| ModelError::io(path, e))?;
            for x in chunk[..n].chunks_exact(width) {
                values.push(decode(x));
            }
            left -= n;
        }
        Ok(())
    }
}

#[derive(Clone, Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

impl TensorInfo {
    fn width(&self) -> Result<usize, ModelError> {
        match self.dtype.as_str() {
            "F32" => Ok(4),
            "F16" | "BF16" => Ok(2),
            "U8" => Ok(1),
            other => Err(ModelError::Format(format!("dtype {other} unsupported"))),
        }
    }
}

enum ValuesOf {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

impl ValuesOf {
    fn new(dtype: DType, count: usize) -> Result<Self, ModelError> {
        match dtype {
            DType::F32 => Ok(Self::F32(Vec::with_capacity(count))),
            DType::F16 => Ok(Self::F16(Vec::with_capacity(count))),
            other => Err(ModelError::Format(format!(
                "weights can be kept as f32 or f16, not {other:?}"
            ))),
        }
    }

    fn push(&mut self, x: f32) {
        match self {
            Self::F32(v) => v.push(x),
            Self::F16(v) => v.push(half::f16::from_f32(x)),
        }
    }

    fn into_tensor(self, shape: &[usize]) -> candle_core::Result<Tensor> {
        match self {
            Self::F32(v) => Tensor::from_vec(v, shape, &Device::Cpu),
            Self::F16(v) => Tensor::from_vec(v, shape, &Device::Cpu),
        }
    }
}
