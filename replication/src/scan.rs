//! The scanning pipeline: one reader thread reads blocks in order into pooled buffers, hashing
//! threads compute xxh3-128 and zero detection for every block and SHA-256 only for the blocks
//! to send, and hand them to the async uploader over a bounded channel. What the caller hands
//! in ([`ScanShared`]) is shared by every scan running at once: a fixed pool of buffers bounds
//! memory whatever the disk size and the number of scans, and a fixed number of hashing permits
//! bounds the CPU they use (a scan's hashing thread hashes only while it holds one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::manifest::{BLOCK_SIZE, BlockHash, Manifest, block_hash, zero_block_hash};
use crate::source::{BlockRead, DiskSource, SourceError};

/// What the scan compares each block against.
#[derive(Debug, Default)]
pub struct Reference {
    /// The previous snapshot's manifest; `None` for a seed.
    pub parent: Option<Arc<Manifest>>,
    /// Blocks this (resumed) snapshot already accepted.
    pub written: HashMap<u64, BlockHash>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Same as the parent (or zero in a seed): nothing to send.
    Unchanged,
    /// Already accepted by this snapshot with this content.
    AlreadyWritten,
    Send,
}

impl Reference {
    pub fn decide(&self, index: u64, hash: &BlockHash, zero: bool) -> Decision {
        if let Some(written) = self.written.get(&index) {
            return if written == hash {
                Decision::AlreadyWritten
            } else {
                Decision::Send
            };
        }
        match &self.parent {
            // A seed needs no zero block: a new snapshot reads as zeros where nothing was written.
            None if zero => Decision::Unchanged,
            None => Decision::Send,
            // With a parent, the parent's content is what the child reads: send every difference,
            // zeros included, and every block the parent did not cover.
            Some(parent) => match parent.get(index) {
                Some(old) if old == hash => Decision::Unchanged,
                _ => Decision::Send,
            },
        }
    }
}

/// Waits on `freed` until `take` gets something from the state, checking `stop` at least every
/// 100 ms; `None` once `stop` is set.
fn wait_for<S, T>(
    state: &Mutex<S>,
    freed: &Condvar,
    stop: &AtomicBool,
    mut take: impl FnMut(&mut S) -> Option<T>,
) -> Option<T> {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(got) = take(&mut st) {
            return Some(got);
        }
        st = freed
            .wait_timeout(st, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// A counted pool of block buffers; the reader and hashers wait for a free one.
pub struct BufferPool {
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    available: usize,
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    pub fn new(buffers: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            state: Mutex::new(PoolState {
                available: buffers.max(1),
                free: Vec::new(),
            }),
            freed: Condvar::new(),
        })
    }

    /// Waits for a buffer; `None` once `stop` is set.
    fn acquire(self: &Arc<Self>, stop: &AtomicBool) -> Option<PooledBuf> {
        let buf = wait_for(&self.state, &self.freed, stop, |st| {
            (st.available > 0).then(|| {
                st.available -= 1;
                st.free.pop().unwrap_or_else(|| vec![0u8; BLOCK_SIZE])
            })
        })?;
        Some(PooledBuf {
            buf: Some(buf),
            pool: Arc::clone(self),
        })
    }

    fn release(&self, buf: Option<Vec<u8>>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.available += 1;
        if let Some(b) = buf.filter(|b| b.len() == BLOCK_SIZE) {
            st.free.push(b);
        }
        drop(st);
        self.freed.notify_one();
    }
}

/// Permits to hash: a hashing thread holds one while it computes hashes, so however many scans
/// run at once, at most this many blocks are hashed at a time. It never waits for a buffer while
/// holding one (no cycle with the buffer pool).
pub struct HashPermits {
    state: Mutex<PermitState>,
    freed: Condvar,
}

struct PermitState {
    available: usize,
    held: usize,
    peak: usize,
}

impl HashPermits {
    pub fn new(permits: usize) -> Arc<HashPermits> {
        Arc::new(HashPermits {
            state: Mutex::new(PermitState {
                available: permits.max(1),
                held: 0,
                peak: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// Waits for a permit; `None` once `stop` is set.
    fn acquire<'a>(&'a self, stop: &AtomicBool) -> Option<HashPermit<'a>> {
        wait_for(&self.state, &self.freed, stop, |st| {
            (st.available > 0).then(|| {
                st.available -= 1;
                st.held += 1;
                st.peak = st.peak.max(st.held);
            })
        })?;
        Some(HashPermit { permits: self })
    }

    /// The most permits ever held at once.
    pub fn peak(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).peak
    }
}

struct HashPermit<'a> {
    permits: &'a HashPermits,
}

impl Drop for HashPermit<'_> {
    fn drop(&mut self) {
        let mut st = self.permits.state.lock().unwrap_or_else(|e| e.into_inner());
        st.available += 1;
        st.held -= 1;
        drop(st);
        self.permits.freed.notify_one();
    }
}

/// What every scan running at once shares: the block buffers and the permits to hash.
#[derive(Clone)]
pub struct ScanShared {
    pub buffers: Arc<BufferPool>,
    pub hashing: Arc<HashPermits>,
}

impl ScanShared {
    /// `buffers` buffers of 512 KiB and `hashing` permits.
    pub fn new(buffers: usize, hashing: usize) -> ScanShared {
        ScanShared {
            buffers: BufferPool::new(buffers),
            hashing: HashPermits::new(hashing),
        }
    }
}

/// A buffer on loan from the pool; returns on drop.
pub struct PooledBuf {
    buf: Option<Vec<u8>>,
    pool: Arc<BufferPool>,
}

impl PooledBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or_default()
    }
    fn as_ref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or_default()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.release(self.buf.take());
    }
}

/// A block to send: its bytes and SHA-256. Holds its pool slot until dropped.
pub struct UploadData {
    pub data: Bytes,
    pub sha256: [u8; 32],
    slot: PooledBuf,
}

impl UploadData {
    fn new(mut slot: PooledBuf, sha256: [u8; 32]) -> UploadData {
        let data = Bytes::from(slot.buf.take().unwrap_or_default());
        UploadData { data, sha256, slot }
    }

    /// Gives the buffer back to the pool for reuse when no one else holds the bytes.
    pub fn recycle(mut self) {
        if let Ok(bytes) = std::mem::take(&mut self.data).try_into_mut() {
            self.slot.buf = Some(bytes.into());
        }
    }
}

pub struct ScannedBlock {
    pub index: u64,
    pub hash: BlockHash,
    /// Read from the source (false: no data there, zeros by definition).
    pub read: bool,
    pub decision: Decision,
    pub upload: Option<UploadData>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanTotals {
    pub blocks: u64,
    pub blocks_read: u64,
}

pub struct Scan {
    pub blocks: mpsc::Receiver<ScannedBlock>,
    /// The reader's outcome, sent after its last block.
    pub done: oneshot::Receiver<Result<ScanTotals, SourceError>>,
    stop: Arc<AtomicBool>,
}

impl Scan {
    /// Stops the threads early (they also stop when `blocks` is dropped).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ScanConfig {
    pub hash_threads: usize,
    /// Capacity of the channel to the uploader.
    pub queue: usize,
}

struct Work {
    index: u64,
    buf: Option<PooledBuf>,
}

/// Starts scanning `block_count` blocks of `source` (blocks past its end read as zeros),
/// reading into the shared buffers (memory: the pool's size × 512 KiB, however many scans share
/// it) and hashing under the shared permits.
pub fn start(
    source: DiskSource,
    block_count: u64,
    reference: Arc<Reference>,
    cfg: ScanConfig,
    shared: &ScanShared,
) -> Scan {
    let pool = Arc::clone(&shared.buffers);
    let (tx, rx) = mpsc::channel(cfg.queue.max(1));
    let (done_tx, done_rx) = oneshot::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let threads = cfg.hash_threads.max(1);
    let mut lanes: Vec<SyncSender<Work>> = Vec::with_capacity(threads);
    for n in 0..threads {
        let (lane_tx, lane_rx) = sync_channel::<Work>(2);
        lanes.push(lane_tx);
        let (tx, reference, shared, stop) = (
            tx.clone(),
            Arc::clone(&reference),
            shared.clone(),
            Arc::clone(&stop),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("rehost-hash-{n}"))
            .spawn(move || hash_lane(lane_rx, tx, &reference, &shared, &stop));
        if let Err(e) = spawned {
            tracing::warn!("cannot start hashing thread {n}: {e}");
            lanes.pop();
        }
    }
    drop(tx);
    let reader_stop = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("rehost-read".into())
        .spawn(move || {
            let result = read_blocks(source, block_count, &lanes, &pool, &reader_stop);
            drop(lanes);
            let _ = done_tx.send(result);
        });
    if let Err(e) = spawned {
        // The closure (and done_tx) were dropped: `done` reports a closed channel.
        tracing::error!("cannot start reader thread: {e}");
    }
    Scan {
        blocks: rx,
        done: done_rx,
        stop,
    }
}

fn read_blocks(
    mut source: DiskSource,
    block_count: u64,
    lanes: &[SyncSender<Work>],
    pool: &Arc<BufferPool>,
    stop: &AtomicBool,
) -> Result<ScanTotals, SourceError> {
    let mut totals = ScanTotals::default();
    if lanes.is_empty() {
        return Ok(totals);
    }
    let source_blocks = source.block_count();
    for index in 0..block_count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut buf = None;
        if index < source_blocks {
            let Some(mut b) = pool.acquire(stop) else {
                break;
            };
            if source.read_block(index, b.as_mut())? == BlockRead::Data {
                totals.blocks_read += 1;
                buf = Some(b);
            }
        }
        if lanes[(index % lanes.len() as u64) as usize]
            .send(Work { index, buf })
            .is_err()
        {
            break; // the uploader stopped
        }
        totals.blocks += 1;
    }
    Ok(totals)
}

fn hash_lane(
    lane: Receiver<Work>,
    out: mpsc::Sender<ScannedBlock>,
    reference: &Reference,
    shared: &ScanShared,
    stop: &AtomicBool,
) {
    while let Ok(Work { index, buf }) = lane.recv() {
        let read = buf.is_some();
        let (hash, decision, upload) = match buf {
            Some(slot) => {
                // Hashing (and only hashing) under a permit: sending may wait for the uploader.
                let Some(_permit) = shared.hashing.acquire(stop) else {
                    return;
                };
                let zero = is_zero(slot.as_ref());
                let hash = if zero {
                    zero_block_hash()
                } else {
                    block_hash(slot.as_ref())
                };
                let decision = reference.decide(index, &hash, zero);
                let upload = (decision == Decision::Send).then(|| {
                    let sha256: [u8; 32] = Sha256::digest(slot.as_ref()).into();
                    UploadData::new(slot, sha256)
                });
                (hash, decision, upload)
            }
            None => {
                // No data there: zeros, whose hashes are known.
                let hash = zero_block_hash();
                let decision = reference.decide(index, &hash, true);
                let upload = if decision == Decision::Send {
                    let Some(mut slot) = shared.buffers.acquire(stop) else {
                        return;
                    };
                    slot.as_mut().fill(0);
                    Some(UploadData::new(slot, zero_block_sha256()))
                } else {
                    None
                };
                (hash, decision, upload)
            }
        };
        if out
            .blocking_send(ScannedBlock {
                index,
                hash,
                read,
                decision,
                upload,
            })
            .is_err()
        {
            return;
        }
    }
}

/// SHA-256 of a block of zeros, computed once.
fn zero_block_sha256() -> [u8; 32] {
    static ZERO: OnceLock<[u8; 32]> = OnceLock::new();
    *ZERO.get_or_init(|| Sha256::digest(vec![0u8; BLOCK_SIZE]).into())
}

/// True when every byte is zero; stops at the first 64-byte chunk that is not.
pub fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    chunks.all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
        && chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        let mut buf = vec![0u8; BLOCK_SIZE];
        assert!(is_zero(&buf));
        buf[BLOCK_SIZE - 1] = 1;
        assert!(!is_zero(&buf));
        assert!(is_zero(&[0u8; 3]));
        assert!(!is_zero(&[0, 0, 7]));
    }

    #[test]
    fn decisions() {
        let a = block_hash(b"a");
        let z = zero_block_hash();
        let seed = Reference::default();
        assert_eq!(seed.decide(0, &z, true), Decision::Unchanged);
        assert_eq!(seed.decide(0, &a, false), Decision::Send);

        let parent = Arc::new(Manifest::from_hashes(vec![a, a]));
        let mut inc = Reference {
            parent: Some(parent),
            written: HashMap::new(),
        };
        assert_eq!(inc.decide(0, &a, false), Decision::Unchanged);
        // Became zeros: must be sent, a missing block is not assumed to read as zero.
        assert_eq!(inc.decide(1, &z, true), Decision::Send);
        // Beyond the parent's disk: always sent.
        assert_eq!(inc.decide(2, &z, true), Decision::Send);

        inc.written.insert(1, z);
        assert_eq!(inc.decide(1, &z, true), Decision::AlreadyWritten);
        // Written earlier with other content: overwrite, even if equal to the parent now.
        assert_eq!(inc.decide(1, &a, false), Decision::Send);
    }

    #[test]
    fn scans_at_once_share_one_bound_on_hashing_and_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = 24u64;
        let mut data = vec![0u8; blocks as usize * BLOCK_SIZE];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i % 251) as u8 ^ (i / BLOCK_SIZE) as u8;
        }
        let path = dir.path().join("disk.raw");
        std::fs::write(&path, &data).unwrap();
        // Four scans of three hashing threads each, under two permits and twelve buffers.
        let shared = ScanShared::new(12, 2);
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let source =
                    DiskSource::open(&path, None, &crate::source::QemuTools::default()).unwrap();
                let mut scan = start(
                    source,
                    blocks,
                    Arc::new(Reference::default()),
                    ScanConfig {
                        hash_threads: 3,
                        queue: 4,
                    },
                    &shared,
                );
                std::thread::spawn(move || {
                    let mut sent = 0;
                    while let Some(b) = scan.blocks.blocking_recv() {
                        let up = b.upload.expect("every block of a seed with data is sent");
                        assert_eq!(<[u8; 32]>::from(Sha256::digest(&up.data)), up.sha256);
                        sent += 1;
                        // Slow consumers keep the scans running side by side.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    sent
                })
            })
            .collect();
        for r in readers {
            assert_eq!(r.join().unwrap(), blocks);
        }
        let peak = shared.hashing.peak();
        assert!((1..=2).contains(&peak), "{peak} blocks hashed at once");
    }
}
