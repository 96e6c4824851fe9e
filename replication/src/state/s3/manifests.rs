//! Manifests: each its own gzip-compressed object, written once when a snapshot starts
//! completing, read back whole within a bound its snapshot allows.

use super::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Decompresses at most `limit` bytes (a manifest cannot be larger than its snapshot allows).
fn gunzip(bytes: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not gzip: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(out)
}

impl S3Store {
    pub(super) async fn manifest_at(
        &self,
        rel: &str,
        block_count: u64,
    ) -> Result<Manifest, StateError> {
        let corrupt = |what: String| StateError::Corrupt {
            location: self.objects().location.clone(),
            table: "manifests",
            id: self.objects().url(rel),
            what,
        };
        let found = self
            .objects()
            .get(rel)
            .await?
            .ok_or_else(|| corrupt("the manifest object is missing".into()))?;
        // Header plus 16 bytes a block, for up to twice the snapshot's blocks (a disk that
        // shrank keeps its parent's length) and at least 1 Mi blocks.
        let limit = 20 + 16 * block_count.saturating_mul(2).max(1 << 20);
        let bytes = gunzip(&found.body, limit).map_err(&corrupt)?;
        Manifest::decode(&bytes).map_err(|e| corrupt(e.to_string()))
    }

    pub(super) async fn put_manifest(
        &self,
        key: &ServerKey,
        snapshot_id: &str,
        manifest: &Manifest,
    ) -> Result<String, StateError> {
        let body = gzip(&manifest.encode());
        loop {
            let rel = layout::manifest(key, snapshot_id, &new_id());
            if let Put::Written(_) = self
                .objects()
                .create(&rel, body.clone(), "application/gzip")
                .await?
            {
                return Ok(rel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_compress_and_a_bomb_is_refused() {
        let sparse = Manifest::with_len(200_000);
        let packed = gzip(&sparse.encode());
        assert!(
            packed.len() < 20_000,
            "{} bytes for a sparse 100 GiB disk",
            packed.len()
        );
        let limit = 20 + 16 * 200_000;
        assert_eq!(gunzip(&packed, limit).unwrap(), sparse.encode());
        assert!(
            gunzip(&packed, limit - 1)
                .unwrap_err()
                .contains("larger than")
        );
        assert!(gunzip(b"not gzip", 100).is_err());
    }
}
