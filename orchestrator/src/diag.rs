//! Problems found in an application file, each anchored at a node so it prints as
//! `FILE:LINE:COL: severity: message`, the format editors and CI annotators understand.

use std::fmt;
use std::path::Path;

use crate::yaml::Pos;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn display<'a>(&'a self, file: &'a Path) -> impl fmt::Display + 'a {
        DisplayWithFile { diag: self, file }
    }
}

struct DisplayWithFile<'a> {
    diag: &'a Diagnostic,
    file: &'a Path,
}

impl fmt::Display for DisplayWithFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.diag.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.diag.pos,
            severity,
            self.diag.message
        )
    }
}

/// Collects every problem instead of stopping at the first.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.items.push(Diagnostic {
            pos,
            severity: Severity::Error,
            message: message.into(),
        });
    }

    pub fn warning(&mut self, pos: Pos, message: impl Into<String>) {
        self.items.push(Diagnostic {
            pos,
            severity: Severity::Warning,
            message: message.into(),
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Every problem as `LINE:COL message`, in file order: what tests compare.
    #[cfg(test)]
    pub(crate) fn lines(self) -> Vec<String> {
        self.into_sorted()
            .into_iter()
            .map(|d| format!("{} {}", d.pos, d.message))
            .collect()
    }

    /// In file order, without repeats (merged settings can report one origin twice).
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by(|a, b| (a.pos, a.severity, &a.message).cmp(&(b.pos, b.severity, &b.message)));
        self.items.dedup();
        self.items
    }
}

/// "did you mean" for a misspelled name: the closest candidate, if it is close enough to be a
/// plausible typo rather than a different name.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(&str, usize)> = None;
    for candidate in candidates {
        let distance = strsim::damerau_levenshtein(wanted, candidate);
        let limit = (wanted.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(_, d)| distance < d) {
            best = Some((candidate, distance));
        }
    }
    best.map(|(c, _)| c)
}

/// Appends " (did you mean `x`?)" when there is a close candidate.
pub fn suggestion<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(wanted, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["directory", "database", "web"];
        assert_eq!(did_you_mean("databse", names), Some("database"));
        assert_eq!(did_you_mean("wbe", names), Some("web"));
        assert_eq!(did_you_mean("frontend", names), None);
    }

    #[test]
    fn sorted_by_position_and_deduplicated() {
        let mut d = Diagnostics::default();
        d.error(Pos { line: 5, col: 1 }, "b");
        d.error(Pos { line: 2, col: 3 }, "a");
        d.error(Pos { line: 5, col: 1 }, "b");
        let sorted = d.into_sorted();
        assert_eq!(sorted.len(), 2);
        assert_eq!(sorted[0].message, "a");
    }
}
