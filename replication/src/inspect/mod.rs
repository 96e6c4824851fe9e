//! Guest inspection: will a server boot on EC2 and run its configure script? Reads a server's
//! disks through the same sources as replication (raw, block devices, qcow2, VMDK, VHD, VHDX),
//! read-only, only the blocks the answer needs; never mounts, never needs root.
//!
//! Layers, bottom up: `io` (disks behind a budgeted cache, volumes, adapters), `partition`
//! (MBR/GPT), `lvm`, `detect` (signatures), filesystem readers (`fat`, `ext`, `ntfsfs`) behind
//! `guestfs::GuestFs`, `hive` (registry), `initramfs`, `bootcfg`, the OS probes (`windows`,
//! `linux`) that produce `facts`, and `verdict`, a pure function of the facts. `server` ties
//! them together; `report` is the output.

mod binfmt;
mod bootcfg;
pub mod cache;
mod detect;
mod ext;
pub mod facts;
mod fat;
mod guestfs;
mod hive;
mod initramfs;
mod io;
mod limits;
mod linux;
mod lvm;
mod ntfsfs;
mod partition;
pub mod report;
mod server;
pub mod verdict;
mod windows;

#[cfg(test)]
mod fuzz_tests;

pub use cache::{Inspected, cached_inspections, inspect_cached};
pub use limits::Limits;
pub use report::{
    DiskReport, Finding, InspectedArch, InspectedBootMode, OsFamily, OsInfo, PartitionReport,
    ServerInspection, Severity, Verdict,
};
pub use server::{InspectError, inspect_server};
