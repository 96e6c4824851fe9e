//! Progress output: indicatif bars on a terminal, periodic log lines otherwise, or nothing.

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

pub(crate) struct Progress {
    mode: ProgressMode,
    multi: MultiProgress,
    overall: Option<ProgressBar>,
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
            overall: None,
        }
    }

    /// Starts the overall bar of a server's run; each disk adds its size when it starts.
    pub fn start_server(&mut self, server: &str) {
        if self.mode != ProgressMode::Bars {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(server.to_string());
        bar.set_message("overall");
        self.overall = Some(bar);
    }

    pub fn disk(&self, server: &str, disk: &str, blocks_total: u64) -> DiskProgress {
        if let Some(all) = &self.overall {
            all.inc_length(blocks_total * crate::manifest::BLOCK_SIZE_U64);
        }
        let bar = (self.mode == ProgressMode::Bars).then(|| {
            let bar = self.multi.add(ProgressBar::new(blocks_total));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} blocks {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(disk.to_string());
            bar
        });
        DiskProgress {
            mode: self.mode,
            label: format!("server {server}, disk {disk}"),
            bar,
            overall: self.overall.clone(),
            total: blocks_total,
            processed: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    pub fn finish_server(&mut self) {
        if let Some(bar) = self.overall.take() {
            bar.finish_and_clear();
        }
    }
}

pub(crate) struct DiskProgress {
    mode: ProgressMode,
    label: String,
    bar: Option<ProgressBar>,
    overall: Option<ProgressBar>,
    total: u64,
    processed: AtomicU64,
    uploaded: AtomicU64,
    last_line: Mutex<Instant>,
}

impl DiskProgress {
    pub fn scanned(&self, blocks: u64) {
        let done = self.processed.fetch_add(blocks, Ordering::Relaxed) + blocks;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if let Some(all) = &self.overall {
            all.inc(blocks * crate::manifest::BLOCK_SIZE_U64);
        }
        self.maybe_line();
    }

    pub fn uploaded(&self) {
        let up = self.uploaded.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{up} sent"));
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
            bar.finish_with_message(message.to_string());
        }
        if self.mode == ProgressMode::Lines {
            tracing::info!("{}: {message}", self.label);
        }
    }
}
