//! Where a server's settings come from: its own blocks, its group's, then `defaults`, the most
//! specific first, and paths as written in the file.

use std::path::{Path, PathBuf};

use crate::app::{Level, Origin, Setting};
use crate::model::{self, LaunchSettings, ReplicationSettings, Spanned, TestSettings};

/// The blocks that apply to one server, most specific first.
pub(super) struct Layers<'a> {
    levels: [(Level, Option<&'a LaunchSettings>); 3],
    replication: [(Level, Option<&'a ReplicationSettings>); 3],
}

impl<'a> Layers<'a> {
    /// The server's own blocks, then its group's, then `defaults`.
    pub(super) fn new(
        index: usize,
        server: &'a model::Server,
        group: usize,
        group_model: Option<&'a model::Group>,
        defaults: &'a model::Settings,
    ) -> Self {
        Layers {
            levels: [
                (Level::Server(index), server.launch.as_ref()),
                (
                    Level::Group(group),
                    group_model.and_then(|g| g.launch.as_ref()),
                ),
                (Level::Defaults, defaults.launch.as_ref()),
            ],
            replication: [
                (Level::Server(index), server.replication.as_ref()),
                (
                    Level::Group(group),
                    group_model.and_then(|g| g.replication.as_ref()),
                ),
                (Level::Defaults, defaults.replication.as_ref()),
            ],
        }
    }

    pub(super) fn launch<T>(
        &self,
        get: impl Fn(&'a LaunchSettings) -> Option<&'a Spanned<T>>,
    ) -> Option<(&'a Spanned<T>, Level)> {
        self.levels
            .iter()
            .find_map(|(level, block)| block.and_then(&get).map(|v| (v, *level)))
    }

    pub(super) fn test<T>(
        &self,
        get: impl Fn(&'a TestSettings) -> Option<&'a Spanned<T>>,
    ) -> Option<(&'a Spanned<T>, Level)> {
        self.levels.iter().find_map(|(level, block)| {
            block
                .and_then(|b| b.test.as_ref())
                .and_then(|t| get(&t.value))
                .map(|v| (v, *level))
        })
    }

    /// The replication blocks that are set, most specific first.
    pub(super) fn replication_blocks(&self) -> impl Iterator<Item = &'a ReplicationSettings> {
        self.replication.into_iter().filter_map(|(_, block)| block)
    }

    pub(super) fn replication<T>(
        &self,
        get: impl Fn(&'a ReplicationSettings) -> Option<&'a Spanned<T>>,
    ) -> Option<&'a Spanned<T>> {
        self.replication
            .iter()
            .find_map(|(_, block)| block.and_then(&get))
    }
}

/// A found value as a `Setting` that remembers its block (`test`: set in a `test:` block).
pub(super) fn setting<T: Clone, U>(
    found: Option<(&Spanned<T>, Level)>,
    test: bool,
    map: impl Fn(&T) -> U,
) -> Option<Setting<U>> {
    found.map(|(v, level)| Setting {
        value: map(&v.value),
        origin: Origin { level, test },
    })
}

/// A path as written in the application file: absolute, or relative to the file's directory.
pub(super) fn relative_to(base_dir: &Path, written: &str) -> PathBuf {
    let p = PathBuf::from(written);
    if p.is_absolute() { p } else { base_dir.join(p) }
}
