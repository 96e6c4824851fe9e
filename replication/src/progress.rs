//! Progress output: a bar per server in flight on a terminal, periodic log lines otherwise, or
//! nothing.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bars,
    Lines,
    Quiet,
}

impl ProgressMode {
    /// Bars when stderr is a terminal, log lines otherwise.
    pub fn auto() -> ProgressMode {
        if std::io::stderr().is_terminal() {
            ProgressMode::Bars
        } else {
            ProgressMode::Lines
        }
    }
}

const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// The progress of every server in flight: on a terminal one bar per server (its disks' blocks
/// scanned, and what is being sent), otherwise a line per disk every few seconds.
pub(crate) struct Progress {
    mode: ProgressMode,
    multi: MultiProgress,
    servers: HashMap<String, ProgressBar>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let multi = MultiProgress::with_draw_target(match mode {
            ProgressMode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        Progress {
            mode,
            multi,
            servers: HashMap::new(),
        }
    }

    /// Starts the bar of a server's run; each disk adds its size when it starts.
    pub fn start_server(&mut self, server: &str) {
        if self.mode != ProgressMode::Bars {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(server.to_string());
        if let Some(old) = self.servers.insert(server.to_string(), bar) {
            old.finish_and_clear();
        }
    }

    pub fn disk(&self, server: &str, disk: &str, blocks_total: u64) -> DiskProgress {
        let bar = self.servers.get(server).cloned();
        if let Some(bar) = &bar {
            bar.inc_length(blocks_total * crate::manifest::BLOCK_SIZE_U64);
            bar.set_message(disk.to_string());
        }
        DiskProgress {
            mode: self.mode,
            disk: disk.to_string(),
            label: format!("server {server}, disk {disk}"),
            bar,
            total: blocks_total,
            processed: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// Removes the server's bar (its report line says how it ended).
    pub fn finish_server(&mut self, server: &str) {
        if let Some(bar) = self.servers.remove(server) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

pub(crate) struct DiskProgress {
    mode: ProgressMode,
    disk: String,
    label: String,
    /// The server's bar, shared by its disks.
    bar: Option<ProgressBar>,
    total: u64,
    processed: AtomicU64,
    uploaded: AtomicU64,
    last_line: Mutex<Instant>,
}

impl DiskProgress {
    pub fn scanned(&self, blocks: u64) {
        self.processed.fetch_add(blocks, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(blocks * crate::manifest::BLOCK_SIZE_U64);
        }
        self.maybe_line();
    }

    pub fn uploaded(&self) {
        let up = self.uploaded.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{}: {up} blocks sent", self.disk));
        }
    }

    fn maybe_line(&self) {
        if self.mode != ProgressMode::Lines {
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LINE_INTERVAL {
            *last = Instant::now();
            tracing::info!(
                "{}: scanned {}/{} blocks, sent {}",
                self.label,
                self.processed.load(Ordering::Relaxed),
                self.total,
                self.uploaded.load(Ordering::Relaxed)
            );
        }
    }

    pub fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{}: {message}", self.disk));
        }
        if self.mode == ProgressMode::Lines {
            tracing::info!("{}: {message}", self.label);
        }
    }
}
