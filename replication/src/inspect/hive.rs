//! A read-only Windows registry hive (regf) reader that reads cells on demand through a
//! `FileRead`, so a 100 MiB SOFTWARE hive costs a few KiB of memory. Bounded: cell offsets are
//! checked against the hive bins, subkey lists are capped, index roots nest at most once, and
//! every cell read is counted against a per-hive cap (which also ends any loop).

use std::cell::Cell;

use super::io::{FileRead, le_u16, le_u32};

const BASE: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveError(pub String);

impl std::fmt::Display for HiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "registry hive: {}", self.0)
    }
}

fn bad(msg: impl Into<String>) -> HiveError {
    HiveError(msg.into())
}

pub struct Hive<'a> {
    file: &'a mut dyn FileRead,
    bins_size: u64,
    root: u32,
    /// The primary and secondary sequence numbers differ: a transaction log was not applied.
    pub dirty: bool,
    cells_left: Cell<u64>,
}

/// A key node, by its cell offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u32);

/// A value's type and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub kind: u32,
    pub data: Vec<u8>,
}

pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_DWORD: u32 = 4;
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;

impl Value {
    pub fn as_string(&self) -> Option<String> {
        if !matches!(self.kind, REG_SZ | REG_EXPAND_SZ) {
            return None;
        }
        let units: Vec<u16> = self
            .data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        Some(String::from_utf16_lossy(&units))
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self.kind {
            REG_DWORD if self.data.len() >= 4 => Some(le_u32(&self.data, 0)),
            REG_DWORD_BIG_ENDIAN if self.data.len() >= 4 => Some(u32::from_be_bytes([
                self.data[0],
                self.data[1],
                self.data[2],
                self.data[3],
            ])),
            _ => None,
        }
    }
}

/// A key or value name: Latin-1 when stored compressed, else UTF-16LE.
fn decode_name(raw: &[u8], compressed: bool) -> String {
    if compressed {
        raw.iter().map(|&b| b as char).collect()
    } else {
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    }
}

impl<'a> Hive<'a> {
    pub fn open(file: &'a mut dyn FileRead, max_cells: u64) -> Result<Hive<'a>, HiveError> {
        if file.size() < BASE + 32 {
            return Err(bad("file too small"));
        }
        let mut base = vec![0u8; 512];
        file.read_exact_at(0, &mut base)
            .map_err(|e| bad(e.to_string()))?;
        if &base[..4] != b"regf" {
            return Err(bad("no regf signature"));
        }
        if le_u32(&base, 20) != 1 {
            return Err(bad("unsupported major version"));
        }
        let bins_size = u64::from(le_u32(&base, 40));
        let available = file.size() - BASE;
        let mut hive = Hive {
            bins_size: bins_size.min(available),
            root: le_u32(&base, 36),
            dirty: le_u32(&base, 4) != le_u32(&base, 8),
            file,
            cells_left: Cell::new(max_cells),
        };
        let mut hbin = [0u8; 4];
        hive.file
            .read_exact_at(BASE, &mut hbin)
            .map_err(|e| bad(e.to_string()))?;
        if &hbin != b"hbin" {
            return Err(bad("first hive bin has no hbin signature"));
        }
        hive.node(hive.root)?;
        Ok(hive)
    }

    pub fn root(&self) -> Key {
        Key(self.root)
    }

    /// The data of the cell at `offset` (relative to the first bin), at most `max` bytes.
    fn cell(&mut self, offset: u32, max: usize) -> Result<Vec<u8>, HiveError> {
        let left = self.cells_left.get();
        if left == 0 {
            return Err(bad("too many cells visited (a loop in the hive?)"));
        }
        self.cells_left.set(left - 1);
        let off = u64::from(offset);
        if !off.is_multiple_of(8) || off + 4 > self.bins_size {
            return Err(bad(format!("cell offset {offset:#x} out of bounds")));
        }
        let mut size = [0u8; 4];
        self.file
            .read_exact_at(BASE + off, &mut size)
            .map_err(|e| bad(e.to_string()))?;
        let size = i32::from_le_bytes(size);
        // Allocated cells have a negative size.
        let len = u64::from(size.unsigned_abs());
        if size >= 0 || len < 8 || off + len > self.bins_size {
            return Err(bad(format!("cell at {offset:#x} has a bad size")));
        }
        let n = ((len - 4) as usize).min(max);
        let mut data = vec![0u8; n];
        self.file
            .read_exact_at(BASE + off + 4, &mut data)
            .map_err(|e| bad(e.to_string()))?;
        Ok(data)
    }

    fn node(&mut self, offset: u32) -> Result<Vec<u8>, HiveError> {
        let d = self.cell(offset, 76 + 512)?;
        if d.len() < 76 || &d[..2] != b"nk" {
            return Err(bad(format!("cell at {offset:#x} is not a key node")));
        }
        Ok(d)
    }

    fn node_name(d: &[u8]) -> String {
        let len = usize::from(le_u16(d, 72)).min(d.len().saturating_sub(76));
        decode_name(&d[76..76 + len], le_u16(d, 2) & 0x20 != 0)
    }

    /// The subkey offsets of a key, at most `max`.
    fn subkey_offsets(&mut self, key: Key, max: usize) -> Result<Vec<u32>, HiveError> {
        let d = self.node(key.0)?;
        if le_u32(&d, 20) == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.list(le_u32(&d, 28), 0, max, &mut out)?;
        Ok(out)
    }

    fn list(
        &mut self,
        offset: u32,
        depth: u8,
        max: usize,
        out: &mut Vec<u32>,
    ) -> Result<(), HiveError> {
        let d = self.cell(offset, 4 + 8 * 65536)?;
        if d.len() < 4 {
            return Err(bad("short subkey list"));
        }
        let count = usize::from(le_u16(&d, 2));
        let (stride, entries) = match &d[..2] {
            b"lf" | b"lh" => (8, true),
            b"li" => (4, true),
            b"ri" => (4, false),
            _ => return Err(bad(format!("cell at {offset:#x} is not a subkey list"))),
        };
        if 4 + count * stride > d.len() {
            return Err(bad("subkey list longer than its cell"));
        }
        for i in 0..count {
            let o = le_u32(&d, 4 + i * stride);
            if entries {
                if out.len() >= max {
                    return Err(bad(format!("more than {max} subkeys")));
                }
                out.push(o);
            } else if depth == 0 {
                self.list(o, 1, max, out)?;
            } else {
                return Err(bad("index roots nested"));
            }
        }
        Ok(())
    }

    /// A direct subkey by name (case-insensitive).
    pub fn subkey(&mut self, key: Key, name: &str) -> Result<Option<Key>, HiveError> {
        let want = name.to_uppercase();
        for o in self.subkey_offsets(key, 100_000)? {
            let d = self.node(o)?;
            if Self::node_name(&d).to_uppercase() == want {
                return Ok(Some(Key(o)));
            }
        }
        Ok(None)
    }

    /// A key by backslash-separated path below `key`.
    pub fn path(&mut self, key: Key, path: &str) -> Result<Option<Key>, HiveError> {
        let mut k = key;
        for comp in path.split('\\').filter(|c| !c.is_empty()) {
            match self.subkey(k, comp)? {
                Some(next) => k = next,
                None => return Ok(None),
            }
        }
        Ok(Some(k))
    }

    /// A value of a key by name (case-insensitive; "" is the default value).
    pub fn value(&mut self, key: Key, name: &str) -> Result<Option<Value>, HiveError> {
        let d = self.node(key.0)?;
        let count = le_u32(&d, 36) as usize;
        if count == 0 {
            return Ok(None);
        }
        if count > 65536 {
            return Err(bad("absurd value count"));
        }
        let list = self.cell(le_u32(&d, 40), count * 4)?;
        if list.len() < count * 4 {
            return Err(bad("value list shorter than its count"));
        }
        let want = name.to_uppercase();
        for i in 0..count {
            let vk = self.cell(le_u32(&list, i * 4), 20 + 512)?;
            if vk.len() < 20 || &vk[..2] != b"vk" {
                return Err(bad("value list points to a non-value cell"));
            }
            let name_len = usize::from(le_u16(&vk, 2)).min(vk.len() - 20);
            let vname = decode_name(&vk[20..20 + name_len], le_u16(&vk, 16) & 1 != 0);
            if vname.to_uppercase() != want {
                continue;
            }
            let size_raw = le_u32(&vk, 4);
            let kind = le_u32(&vk, 12);
            let data = if size_raw & 0x8000_0000 != 0 {
                // Up to four bytes stored in the offset field itself.
                let n = ((size_raw & 0x7FFF_FFFF) as usize).min(4);
                vk[8..8 + n].to_vec()
            } else {
                let n = size_raw as usize;
                if n > 1 << 20 {
                    return Err(bad("value data larger than 1 MiB"));
                }
                let data = self.cell(le_u32(&vk, 8), n)?;
                if data.len() >= 2 && &data[..2] == b"db" && n > 16344 {
                    return Err(bad("big-data values are not read"));
                }
                data
            };
            return Ok(Some(Value { kind, data }));
        }
        Ok(None)
    }
}
