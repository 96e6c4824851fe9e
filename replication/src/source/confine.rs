//! An image in a qemu format may name other files: backing files (a chain of snapshots), an
//! external data file (qcow2), extents (VMDK descriptors). qemu opens whatever they name, so an
//! image from an untrusted guest or host could make rehost copy `/etc/shadow` or `/dev/sda` into
//! a snapshot. Before anything is read, every file an image's chain names must resolve (symlinks
//! followed) to a regular file inside the directory of the disk's own `source`.
//!
//! The chain is walked one layer at a time with `qemu-img info -f FORMAT` (which does not open
//! backing files), so each backing file is checked before qemu opens it and is opened with the
//! format its parent records: qemu never probes a format. Only then does
//! `qemu-img info --backing-chain` confirm that qemu resolves the same chain.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::bounded::{self, Limits};
use super::{Confinement, Reference, Refusal, SourceError, SourceFormat};
use crate::source::QemuTools;

/// Chains deeper than this are refused (libvirt keeps a few external snapshots, not hundreds).
pub(super) const MAX_CHAIN: usize = 64;

/// One `qemu-img info` of one image: a second and a few KiB normally.
const INFO_LIMITS: Limits = Limits {
    timeout: Duration::from_secs(60),
    max_stdout: 4 << 20,
};

/// What `qemu-img info --output=json` says about one image (the fields rehost checks).
#[derive(Debug, Deserialize)]
pub(super) struct Info {
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    pub filename: String,
    pub format: String,
    #[serde(rename = "full-backing-filename")]
    full_backing_filename: Option<String>,
    #[serde(rename = "backing-filename")]
    backing_filename: Option<String>,
    #[serde(rename = "backing-filename-format")]
    backing_filename_format: Option<String>,
    #[serde(rename = "format-specific")]
    format_specific: Option<FormatSpecific>,
    /// Every node qemu opened for the image (qemu 8 and later).
    #[serde(default)]
    children: Vec<Child>,
    /// Set by [`vet`] on the top image: every file of the chain, resolved, sorted (what a
    /// reader of the image reads; the inspection cache fingerprints them).
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct FormatSpecific {
    #[serde(default)]
    data: FormatData,
}

#[derive(Debug, Default, Deserialize)]
struct FormatData {
    #[serde(rename = "data-file")]
    data_file: Option<String>,
    #[serde(default)]
    extents: Vec<NamedFile>,
}

#[derive(Debug, Deserialize)]
struct NamedFile {
    filename: String,
}

#[derive(Debug, Deserialize)]
struct Child {
    name: String,
    info: ChildInfo,
}

#[derive(Debug, Deserialize)]
struct ChildInfo {
    filename: String,
    #[serde(default)]
    children: Vec<Child>,
}

/// One vetted layer of a chain: the name qemu opens it by and its recorded format.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layer {
    name: PathBuf,
    format: SourceFormat,
}

impl QemuTools {
    fn info(&self, name: &Path, format: SourceFormat, chain: bool) -> Result<Vec<u8>, SourceError> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["info".as_ref(), "--output=json".as_ref()];
        if chain {
            args.push("--backing-chain".as_ref());
        }
        args.extend(["-f".as_ref(), format.qemu_name().as_ref(), name.as_os_str()]);
        bounded::run(&self.qemu_img, &args, name, INFO_LIMITS)
    }
}

fn unexpected(path: &Path, e: serde_json::Error) -> SourceError {
    SourceError::Tool {
        path: path.to_path_buf(),
        tool: "qemu-img info".into(),
        message: format!("unexpected output: {e}"),
    }
}

/// Checks every file the image at `source` (in `format`) and its backing chain name; returns
/// what qemu-img says about the image itself.
pub(super) fn vet(
    source: &Path,
    format: SourceFormat,
    tools: &QemuTools,
) -> Result<Info, SourceError> {
    let io = |operation, e| SourceError::Io {
        path: source.to_path_buf(),
        operation,
        offset: None,
        source: e,
    };
    // qemu resolves relative names against the name an image was opened by, not its target, so
    // the walk uses the same absolute (not canonical) name that qemu-nbd and qemu-img map get.
    let top_name = std::path::absolute(source).map_err(|e| io("resolve", e))?;
    let home = top_name.parent().unwrap_or(Path::new("/"));
    let home = home
        .canonicalize()
        .map_err(|e| io("resolve its directory", e))?;
    let refuse = |image: &Path, reference, target: &str, rule| {
        SourceError::Refused(Box::new(Refusal {
            path: source.to_path_buf(),
            image: image.to_path_buf(),
            reference,
            target: target.to_string(),
            rule,
        }))
    };

    let mut layers = vec![Layer {
        name: top_name.clone(),
        format,
    }];
    let mut top = None;
    let mut files = std::collections::BTreeSet::new();
    loop {
        let layer = layers.last().expect("the chain has its top").clone();
        let raw = tools.info(&layer.name, layer.format, false)?;
        let info: Info = serde_json::from_slice(&raw).map_err(|e| unexpected(source, e))?;
        for (reference, target) in info.references() {
            files.insert(
                confine(&layer.name, &target, &home)
                    .map_err(|rule| refuse(&layer.name, reference, &target, rule))?,
            );
        }
        if let Ok(own) = layer.name.canonicalize() {
            files.insert(own);
        }
        let backing = info
            .full_backing_filename
            .clone()
            .or_else(|| info.backing_filename.clone());
        let backing_format = info.backing_filename_format.clone();
        if top.is_none() {
            top = Some(info);
        }
        let Some(backing) = backing else { break };
        let image = layer.name.clone();
        confine(&image, &backing, &home)
            .map_err(|rule| refuse(&image, Reference::BackingFile, &backing, rule))?;
        let Some(format_name) = backing_format else {
            return Err(refuse(
                &image,
                Reference::BackingFile,
                &backing,
                Confinement::UndeclaredFormat,
            ));
        };
        let Some(format) = SourceFormat::from_qemu_name(&format_name) else {
            return Err(refuse(
                &image,
                Reference::BackingFile,
                &backing,
                Confinement::UnsupportedFormat(format_name),
            ));
        };
        if layers.len() >= MAX_CHAIN {
            return Err(refuse(
                &image,
                Reference::BackingFile,
                &backing,
                Confinement::TooDeep,
            ));
        }
        layers.push(Layer {
            name: joined(&image, &backing),
            format,
        });
    }

    // Every layer is vetted, so qemu may now walk the chain itself: it must find the same one.
    let raw = tools.info(&top_name, format, true)?;
    let walked: Vec<Info> = serde_json::from_slice(&raw).map_err(|e| unexpected(source, e))?;
    let same = walked.len() == layers.len()
        && walked.iter().zip(&layers).all(|(w, l)| {
            w.format == l.format.qemu_name()
                && joined(&l.name, &w.filename).canonicalize().ok() == l.name.canonicalize().ok()
        });
    if !same {
        let names: Vec<String> = walked.iter().map(|w| w.filename.clone()).collect();
        return Err(refuse(
            &top_name,
            Reference::BackingFile,
            &names.join(" -> "),
            Confinement::Mismatch,
        ));
    }
    let mut top = top.expect("the walk read the top image");
    top.files = files.into_iter().collect();
    Ok(top)
}

impl Info {
    /// Every file the image names besides its backing file: data file, extents, and the files
    /// of the nodes qemu opened for it (which include the image's own file).
    fn references(&self) -> Vec<(Reference, String)> {
        let mut out = Vec::new();
        if let Some(data) = self.format_specific.as_ref().map(|f| &f.data) {
            if let Some(d) = &data.data_file {
                out.push((Reference::DataFile, d.clone()));
            }
            for e in &data.extents {
                out.push((Reference::Extent, e.filename.clone()));
            }
        }
        let mut todo: Vec<&Child> = self.children.iter().collect();
        while let Some(child) = todo.pop() {
            let kind = if child.name.starts_with("extents") {
                Reference::Extent
            } else if child.name == "data-file" {
                Reference::DataFile
            } else {
                Reference::File
            };
            out.push((kind, child.info.filename.clone()));
            todo.extend(&child.info.children);
        }
        out
    }
}

/// `name` as qemu opens it from `image`: relative names are relative to the image's directory.
fn joined(image: &Path, name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        image.parent().unwrap_or(Path::new("/")).join(path)
    }
}

/// Where `name` (named by `image`) really is, if that is the image itself (its own file node, or
/// a sparse VMDK as its own first extent) or a regular file inside `home`.
fn confine(image: &Path, name: &str, home: &Path) -> Result<PathBuf, Confinement> {
    if name.starts_with("json:") || has_protocol(name) {
        return Err(Confinement::NotAFile);
    }
    let resolved = joined(image, name)
        .canonicalize()
        .map_err(|e| Confinement::Unresolvable(e.to_string()))?;
    if image.canonicalize().ok().as_ref() == Some(&resolved) {
        return Ok(resolved);
    }
    if !resolved.starts_with(home) {
        return Err(Confinement::Outside {
            resolved,
            directory: home.to_path_buf(),
        });
    }
    match std::fs::metadata(&resolved) {
        Ok(m) if m.is_file() => Ok(resolved),
        Ok(_) => Err(Confinement::NotRegular { resolved }),
        Err(e) => Err(Confinement::Unresolvable(e.to_string())),
    }
}

/// qemu's rule (`path_has_protocol`): a `:` before any `/` makes the name a protocol
/// (`nbd:`, `http:`, `file:`, ...), which qemu would open instead of a file.
fn has_protocol(name: &str) -> bool {
    name.find([':', '/'])
        .is_some_and(|i| name.as_bytes()[i] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_recognised_as_qemu_does() {
        for p in [
            "nbd://h/x",
            "nbd:unix:/s",
            "http://x",
            "file:/etc/passwd",
            "a:b",
        ] {
            assert!(has_protocol(p), "{p}");
        }
        for f in ["/a:b", "./a:b", "base.qcow2", "dir/x:y"] {
            assert!(!has_protocol(f), "{f}");
        }
    }
}
