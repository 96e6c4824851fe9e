//! Problems found in an application file, each anchored at a node so it prints as
//! `FILE:LINE:COL: severity: message`, the format editors and CI annotators understand.

use std::borrow::Cow;
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
}
