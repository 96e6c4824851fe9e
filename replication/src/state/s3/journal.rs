//! The blocks an open snapshot accepted, on S3: a journal of segment objects under
//! `apps/<app>/journal/<server>/<snapshot>/`, one per batch the recorder commits
//! (`<seq>.seg`, created with `If-None-Match: *` so no segment is ever overwritten), merged on
//! read (a later record of a block replaces an earlier one). Every [`COMPACT_EVERY`] segments
//! the writer folds everything so far into one base (`<seq>.base`) and deletes what it covers,
//! so resuming a long seed reads a handful of objects, not thousands.
//!
//! A lost or ignored segment only means its blocks are sent again: a record is written only
//! after EBS accepted the block, so the journal never claims a block that is not there.

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::objects::{Objects, Put};
use crate::manifest::BlockHash;
use crate::state::{StateError, WrittenBlock};

const MAGIC: &[u8; 4] = b"RHWJ";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 12;
const RECORD_LEN: usize = 8 + 16 + 32;
/// Segments between two compactions.
pub const COMPACT_EVERY: u64 = 64;
/// Segment reads at once.
const READ_FANOUT: usize = 16;
const CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Base,
    Segment,
}

/// A journal object's number and kind, from its key.
fn parse(rel: &str, dir: &str) -> Option<(u64, Kind)> {
    let name = rel.strip_prefix(dir)?;
    let (seq, ext) = name.split_once('.')?;
    let kind = match ext {
        "seg" => Kind::Segment,
        "base" => Kind::Base,
        _ => return None,
    };
    Some((seq.parse().ok()?, kind))
}

fn name(dir: &str, seq: u64, kind: Kind) -> String {
    let ext = match kind {
        Kind::Base => "base",
        Kind::Segment => "seg",
    };
    format!("{dir}{seq:020}.{ext}")
}

pub fn encode(blocks: &[WrittenBlock]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + blocks.len() * RECORD_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    for b in blocks {
        out.extend_from_slice(&b.index.to_le_bytes());
        out.extend_from_slice(&b.xxh3);
        out.extend_from_slice(&b.sha256);
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<WrittenBlock>, String> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err("not a journal segment".into());
    }
    if bytes[4] != VERSION {
        return Err(format!(
            "journal version {} (this rehost reads {VERSION})",
            bytes[4]
        ));
    }
    let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let body = &bytes[HEADER_LEN..];
    if body.len() != count * RECORD_LEN {
        return Err(format!("{count} records announced, {} bytes", body.len()));
    }
    Ok(body
        .chunks_exact(RECORD_LEN)
        .map(|r| {
            let mut index = [0u8; 8];
            index.copy_from_slice(&r[..8]);
            let mut xxh3: BlockHash = [0; 16];
            xxh3.copy_from_slice(&r[8..24]);
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(&r[24..]);
            WrittenBlock {
                index: u64::from_le_bytes(index),
                xxh3,
                sha256,
            }
        })
        .collect())
}

/// The objects of a journal that count: the newest base and the segments after it.
async fn current(objects: &Objects, dir: &str) -> Result<(Vec<(u64, Kind)>, u64), StateError> {
    let mut entries: Vec<(u64, Kind)> = objects
        .list(dir, false)
        .await?
        .keys
        .iter()
        .filter_map(|k| parse(k, dir))
        .collect();
    entries.sort();
    let next = entries.last().map_or(0, |(seq, _)| seq + 1);
    let base = entries
        .iter()
        .filter(|(_, kind)| *kind == Kind::Base)
        .map(|(seq, _)| *seq)
        .max();
    if let Some(base) = base {
        entries.retain(|&(seq, kind)| (seq == base && kind == Kind::Base) || seq > base);
    }
    Ok((entries, next))
}

/// Every block the journal holds, one record per index (the latest), ascending. Also the next
/// free sequence number.
pub async fn read(objects: &Objects, dir: &str) -> Result<(Vec<WrittenBlock>, u64), StateError> {
    let (entries, next) = current(objects, dir).await?;
    let parts: Vec<Vec<WrittenBlock>> = stream::iter(entries)
        .map(|(seq, kind)| async move {
            let rel = name(dir, seq, kind);
            match objects.get(&rel).await? {
                None => Ok(Vec::new()), // compacted away meanwhile: its records are in a base
                Some(f) => decode(&f.body).map_err(|what| StateError::Corrupt {
                    location: objects.location.clone(),
                    table: "written_blocks",
                    id: objects.url(&rel),
                    what,
                }),
            }
        })
        .buffered(READ_FANOUT)
        .try_collect()
        .await?;
    let mut merged = std::collections::BTreeMap::new();
    for part in parts {
        for b in part {
            merged.insert(b.index, b);
        }
    }
    Ok((merged.into_values().collect(), next))
}

/// Appends a batch as segment `*next` (or the first free one after it); returns the number
/// written, after which `*next` is the following one. Every [`COMPACT_EVERY`] segments the
/// journal is compacted.
pub async fn append(
    objects: &Objects,
    dir: &str,
    next: &mut Option<u64>,
    blocks: &[WrittenBlock],
) -> Result<(), StateError> {
    let body = encode(blocks);
    let mut seq = match *next {
        Some(seq) => seq,
        None => current(objects, dir).await?.1,
    };
    loop {
        match objects
            .create(&name(dir, seq, Kind::Segment), body.clone(), CONTENT_TYPE)
            .await?
        {
            Put::Written(_) => break,
            // Taken (another handle on the same snapshot): after whatever is there now.
            Put::Conflict => seq = current(objects, dir).await?.1.max(seq + 1),
        }
    }
    *next = Some(seq + 1);
    if (seq + 1) % COMPACT_EVERY == 0 {
        compact(objects, dir, next).await?;
    }
    Ok(())
}

/// Folds the journal into one base object and deletes the objects it covers.
async fn compact(objects: &Objects, dir: &str, next: &mut Option<u64>) -> Result<(), StateError> {
    let (blocks, free) = read(objects, dir).await?;
    let base = free;
    match objects
        .create(&name(dir, base, Kind::Base), encode(&blocks), CONTENT_TYPE)
        .await?
    {
        Put::Written(_) => {}
        // Someone else is appending: leave compaction for later.
        Put::Conflict => return Ok(()),
    }
    *next = Some(base + 1);
    let covered: Vec<String> = objects
        .list(dir, false)
        .await?
        .keys
        .into_iter()
        .filter(|k| parse(k, dir).is_some_and(|(seq, _)| seq < base))
        .collect();
    if let Err(e) = objects.delete(&covered).await {
        // Harmless: readers ignore what a base covers.
        tracing::warn!(
            "journal {}: cannot delete compacted segments: {e}",
            objects.url(dir)
        );
    }
    Ok(())
}

/// Deletes the whole journal (its snapshot completed or was given up). Best effort: a
/// journal left behind is never read for a snapshot that is not open.
pub async fn drop_all(objects: &Objects, dir: &str) {
    let result = async {
        let keys = objects.list(dir, false).await?.keys;
        objects.delete(&keys).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!("cannot delete journal {}: {e}", objects.url(dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(i: u64) -> WrittenBlock {
        WrittenBlock {
            index: i,
            xxh3: [i as u8; 16],
            sha256: [!(i as u8); 32],
        }
    }

    #[test]
    fn segments_round_trip_and_damage_is_reported() {
        let blocks = vec![block(3), block(1)];
        let bytes = encode(&blocks);
        assert_eq!(bytes.len(), HEADER_LEN + 2 * RECORD_LEN);
        assert_eq!(decode(&bytes).unwrap(), blocks);
        assert!(
            decode(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .contains("2 records")
        );
        assert!(decode(b"RHWJ").is_err());
        let mut newer = bytes.clone();
        newer[4] = 9;
        assert!(decode(&newer).unwrap_err().contains("version 9"));
    }

    #[test]
    fn names_sort_by_number_and_parse_back() {
        let dir = "apps/a/journal/s/snap-1/";
        let n = name(dir, 42, Kind::Segment);
        assert_eq!(parse(&n, dir), Some((42, Kind::Segment)));
        assert_eq!(parse(&name(dir, 7, Kind::Base), dir), Some((7, Kind::Base)));
        assert!(name(dir, 9, Kind::Segment) < name(dir, 10, Kind::Segment));
        assert_eq!(parse("apps/a/journal/s/snap-1/x.tmp", dir), None);
    }
}
