//! Per-disk manifest: the xxh3-128 hash of every 512 KiB block (zero blocks included), kept
//! for each completed snapshot so the next run sends exactly the blocks whose hash changed.

use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_128;

/// The EBS direct API block size; rehost always writes 512 KiB blocks.
pub const BLOCK_SIZE: usize = 524_288;
pub const BLOCK_SIZE_U64: u64 = BLOCK_SIZE as u64;

pub type BlockHash = [u8; 16];

const MAGIC: &[u8; 4] = b"RHMF";
const VERSION: u8 = 1;
/// Hash algorithm id 1: xxh3-128, big-endian.
const HASH_XXH3_128: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 1 + 2 + 4 + 8;

pub fn block_hash(data: &[u8]) -> BlockHash {
    xxh3_128(data).to_be_bytes()
}

/// The hash of an all-zero block, computed once.
pub fn zero_block_hash() -> BlockHash {
    static ZERO: OnceLock<BlockHash> = OnceLock::new();
    *ZERO.get_or_init(|| block_hash(&vec![0u8; BLOCK_SIZE]))
}

/// Number of 512 KiB blocks covering `size` bytes (the last one zero-padded).
pub fn block_count(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE_U64)
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    hashes: Vec<BlockHash>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("manifest is corrupt: {0}")]
pub struct ManifestError(pub String);

impl Manifest {
    pub fn with_len(blocks: u64) -> Manifest {
        Manifest {
            hashes: vec![[0u8; 16]; blocks as usize],
        }
    }

    pub fn from_hashes(hashes: Vec<BlockHash>) -> Manifest {
        Manifest { hashes }
    }

    pub fn len(&self) -> u64 {
        self.hashes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn get(&self, index: u64) -> Option<&BlockHash> {
        self.hashes.get(usize::try_from(index).ok()?)
    }

    pub fn set(&mut self, index: u64, hash: BlockHash) {
        if let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| self.hashes.get_mut(i))
        {
            *slot = hash;
        }
    }

    pub fn hashes(&self) -> &[BlockHash] {
        &self.hashes
    }

    /// Layout: "RHMF", version, hash algorithm, 2 reserved bytes, block size (u32 LE),
    /// block count (u64 LE), then 16 bytes per block.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.hashes.len() * 16);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(HASH_XXH3_128);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        out.extend_from_slice(&(self.hashes.len() as u64).to_le_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() < HEADER_LEN || &bytes[0..4] != MAGIC {
            return Err(ManifestError("bad magic".into()));
        }
        if bytes[4] != VERSION || bytes[5] != HASH_XXH3_128 {
            return Err(ManifestError(format!(
                "unsupported version {} / hash {}",
                bytes[4], bytes[5]
            )));
        }
        let block_size = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if block_size as usize != BLOCK_SIZE {
            return Err(ManifestError(format!("block size {block_size}")));
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&bytes[12..20]);
        let count = u64::from_le_bytes(count);
        let body = &bytes[HEADER_LEN..];
        if body.len() as u64 != count.saturating_mul(16) {
            return Err(ManifestError(format!(
                "{count} blocks announced, {} bytes of hashes",
                body.len()
            )));
        }
        let hashes = body
            .chunks_exact(16)
            .map(|c| {
                let mut h = [0u8; 16];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Ok(Manifest { hashes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let mut m = Manifest::with_len(3);
        m.set(1, block_hash(b"abc"));
        m.set(2, zero_block_hash());
        let bytes = m.encode();
        assert_eq!(bytes.len(), 20 + 48);
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert!(Manifest::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Manifest::decode(b"nope").is_err());
    }

    #[test]
    fn block_counts() {
        assert_eq!(block_count(0), 0);
        assert_eq!(block_count(1), 1);
        assert_eq!(block_count(BLOCK_SIZE_U64), 1);
        assert_eq!(block_count(BLOCK_SIZE_U64 + 1), 2);
    }
}
