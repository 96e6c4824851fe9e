//! Problems found in an application file, each anchored at a node so it prints as
//! `FILE:LINE:COL: severity: message`, the format editors and CI annotators understand.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::path::Path;

use crate::limits::{
    MAX_DIAGNOSTICS_PER_KIND, MAX_SUGGESTION_CANDIDATES, MAX_SUGGESTION_LEN, MAX_SUGGESTIONS,
};
use crate::yaml::Pos;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    /// What rehost will do that the reader should know (nested stacks), never a problem.
    Note,
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
            Severity::Note => "note",
        };
        // A diagnostic is one line: file names and messages hold user text, which could
        // otherwise move the cursor, rewrite the line or reach the terminal's clipboard.
        write!(
            f,
            "{}:{}: {}: {}",
            escape_controls(&self.file.display().to_string()),
            self.diag.pos,
            severity,
            escape_controls(&self.diag.message)
        )
    }
}

/// `text` as a terminal can show it safely on one line: control characters (C0 such as ESC,
/// which starts sequences like OSC 52 that write the clipboard, `\r` that returns over what was
/// printed, `\n`; DEL; C1 such as the 8-bit CSI) and the Unicode characters that reorder or
/// break what is shown (bidi embeddings, overrides and isolates, line and paragraph separators)
/// are written as escapes: `\n`, `\r`, `\t`, else `\u{1b}`.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// As [`escape_controls`], leaving `\n` for messages that are several lines by design.
pub fn escape_controls_multiline(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| !(keep_newlines && c == '\n') && is_unsafe_for_terminal(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            _ if !unsafe_char(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    Cow::Owned(out)
}

fn is_unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// Collects every problem instead of stopping at the first.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// Parallel to `items`: where in rehost each was reported, which is its kind.
    kinds: Vec<Kind>,
    /// "did you mean" searches made so far (they are bounded: see [`Diagnostics::suggestion`]).
    suggestions: usize,
}

/// The source location that reported a diagnostic: problems reported at one place are of one
/// kind ("group lists unknown server"), however many times a hostile file repeats them.
type Kind = (&'static str, u32, u32);

/// What `load` shows of the problems found.
#[derive(Clone, Debug)]
pub struct Report {
    /// In file order, without repeats, at most `limits::MAX_DIAGNOSTICS_PER_KIND` of one kind;
    /// where more were found, one line at the first left out says how many.
    pub shown: Vec<Diagnostic>,
    /// Errors found in all, shown or not.
    pub errors: usize,
}

impl Diagnostics {
    #[track_caller]
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(pos, Severity::Error, message.into(), Location::caller());
    }

    #[track_caller]
    pub fn warning(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(pos, Severity::Warning, message.into(), Location::caller());
    }

    #[track_caller]
    pub fn note(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(pos, Severity::Note, message.into(), Location::caller());
    }

    fn push(&mut self, pos: Pos, severity: Severity, message: String, at: &'static Location) {
        self.items.push(Diagnostic {
            pos,
            severity,
            message,
        });
        self.kinds.push((at.file(), at.line(), at.column()));
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// " (did you mean `x`?)" when a candidate is close to `wanted`, for the first
    /// `limits::MAX_SUGGESTIONS` names asked about; after that, nothing (the messages that would
    /// carry more are capped anyway, and each search costs time).
    pub fn suggestion<'a>(
        &mut self,
        wanted: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> String {
        if self.suggestions >= MAX_SUGGESTIONS {
            return String::new();
        }
        self.suggestions += 1;
        suggestion(wanted, candidates)
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
    pub fn into_sorted(self) -> Vec<Diagnostic> {
        self.sorted_with_kinds()
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    }

    fn sorted_with_kinds(self) -> Vec<(Diagnostic, Kind)> {
        let mut all: Vec<(Diagnostic, Kind)> = self.items.into_iter().zip(self.kinds).collect();
        all.sort_by(|(a, _), (b, _)| {
            (a.pos, a.severity, &a.message).cmp(&(b.pos, b.severity, &b.message))
        });
        all.dedup_by(|(a, _), (b, _)| a == b);
        all
    }

    /// In file order, without repeats, with repeated kinds capped (see [`Report`]).
    pub fn into_report(self) -> Report {
        let all = self.sorted_with_kinds();
        let errors = all
            .iter()
            .filter(|(d, _)| d.severity == Severity::Error)
            .count();
        let mut seen: HashMap<Kind, (usize, Pos)> = HashMap::new();
        let mut left_out: HashMap<Kind, (usize, Diagnostic)> = HashMap::new();
        let mut shown = Vec::new();
        for (d, kind) in all {
            let (count, first) = seen.entry(kind).or_insert((0, d.pos));
            *count += 1;
            if *count <= MAX_DIAGNOSTICS_PER_KIND {
                shown.push(d);
                continue;
            }
            let first = *first;
            left_out
                .entry(kind)
                .or_insert_with(|| {
                    let summary = Diagnostic {
                        message: format!("like the {} at {first}", severity_name(d.severity)),
                        ..d
                    };
                    (0, summary)
                })
                .0 += 1;
        }
        for (n, mut summary) in left_out.into_values() {
            let plural = if n == 1 { "" } else { "s" };
            summary.message = format!(
                "{n} more problem{plural} {}, from here on, not shown",
                summary.message
            );
            shown.push(summary);
        }
        shown.sort_by(|a, b| (a.pos, a.severity, &a.message).cmp(&(b.pos, b.severity, &b.message)));
        Report { shown, errors }
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// "did you mean" for a misspelled name: the closest candidate, if it is close enough to be a
/// plausible typo rather than a different name. Bounded, whatever the input: names longer than
/// any id (`limits::MAX_SUGGESTION_LEN`) are never compared, and only the first
/// `limits::MAX_SUGGESTION_CANDIDATES` candidates of a plausible length are.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wanted_len = wanted.chars().count();
    if wanted_len > MAX_SUGGESTION_LEN {
        return None;
    }
    let mut best: Option<(&str, usize)> = None;
    let plausible = candidates.into_iter().filter_map(|c| {
        let len = c.chars().take(MAX_SUGGESTION_LEN + 1).count();
        let limit = (wanted_len.max(len) / 3).max(1);
        // The distance is at least the difference in length.
        (len <= MAX_SUGGESTION_LEN && wanted_len.abs_diff(len) <= limit).then_some((c, limit))
    });
    for (candidate, limit) in plausible.take(MAX_SUGGESTION_CANDIDATES) {
        let distance = strsim::damerau_levenshtein(wanted, candidate);
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
    fn control_characters_in_messages_are_escaped() {
        let hostile = "key\u{1b}]52;c;ZXZpbA==\u{7}\rfake\nline\u{9b}2J\u{202e}txt\u{7f}\t";
        let d = Diagnostic {
            pos: Pos { line: 3, col: 7 },
            severity: Severity::Error,
            message: format!("unknown field `{hostile}`"),
        };
        let shown = d.display(Path::new("app\u{1b}[2J.yaml")).to_string();
        assert_eq!(
            shown,
            "app\\u{1b}[2J.yaml:3:7: error: unknown field \
             `key\\u{1b}]52;c;ZXZpbA==\\u{7}\\rfake\\nline\\u{9b}2J\\u{202e}txt\\u{7f}\\t`"
        );
        assert!(!shown.chars().any(is_unsafe_for_terminal), "{shown:?}");
        assert_eq!(
            escape_controls("plain `text` ünïcode"),
            "plain `text` ünïcode"
        );
        assert_eq!(escape_controls_multiline("a\nb\u{1b}"), "a\nb\\u{1b}");
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

    /// Issue 8 item 6: repeats of one kind are capped in what is shown, and counted.
    #[test]
    fn repeats_of_one_kind_are_capped_and_counted() {
        let mut d = Diagnostics::default();
        for line in (1..=25).rev() {
            d.error(Pos { line, col: 1 }, format!("unknown server x{line}"));
        }
        for line in 1..=3 {
            d.warning(Pos { line, col: 9 }, "other kind");
        }
        let report = d.into_report();
        assert_eq!(report.errors, 25);
        let lines: Vec<String> = report
            .shown
            .iter()
            .map(|d| format!("{} {}", d.pos, d.message))
            .collect();
        assert_eq!(lines.len(), 20 + 3 + 1, "{lines:?}");
        assert_eq!(lines[0], "1:1 unknown server x1");
        assert!(lines.contains(&"20:1 unknown server x20".to_string()));
        assert_eq!(
            lines.last().unwrap(),
            "21:1 5 more problems like the error at 1:1, from here on, not shown"
        );
    }

    /// Issue 8 item 6: "did you mean" is bounded by the number of searches and candidates.
    #[test]
    fn suggestions_are_bounded() {
        let mut d = Diagnostics::default();
        let names = ["database"];
        for _ in 0..MAX_SUGGESTIONS {
            assert_eq!(
                d.suggestion("databse", names),
                " (did you mean `database`?)"
            );
        }
        assert_eq!(d.suggestion("databse", names), "", "the budget is spent");
        let long = "a".repeat(100_000);
        assert_eq!(
            did_you_mean(&long, [long.as_str()]),
            None,
            "too long to be a typo"
        );
        // Beyond the bounded candidate set, a close name is not found.
        let many: Vec<String> = (0..MAX_SUGGESTION_CANDIDATES)
            .map(|i| format!("s{i:07}"))
            .collect();
        let mut candidates: Vec<&str> = many.iter().map(String::as_str).collect();
        candidates.push("databass");
        assert_eq!(did_you_mean("databse", candidates.iter().copied()), None);
        assert_eq!(did_you_mean("databse", ["x", "databass"]), Some("databass"));
    }
}
