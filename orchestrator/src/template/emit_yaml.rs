//! `render --format yaml`: the template's JSON data model written as block-style YAML that YAML
//! 1.1 readers (PyYAML, which cfn-lint and many pipelines use) and YAML 1.2 readers read back as
//! exactly the JSON rendering.
//!
//! serde_norway decides quoting by YAML 1.2's core schema alone, so strings such as `yes`, `on`,
//! `12:30`, `1_000` or `2001-12-14` come out plain and a YAML 1.1 reader turns them into booleans,
//! numbers and dates (and `=` or `<<` make PyYAML fail). Here a string is written plain only when
//! it is provably a string in both versions (a letter, then letters, digits, a few punctuation
//! marks and inner spaces, and none of the words either version resolves); text of several lines becomes a
//! literal block when that is exact; everything else is double-quoted with JSON's escapes plus
//! escapes for the characters YAML treats as line breaks or refuses to read.

use serde_json::{Map, Value};

/// The document, ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => mapping(m, 0, false, &mut out),
        Value::Array(a) if !a.is_empty() => sequence(a, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

/// Entries at column `indent`; the first on the current line when `first_inline` (after `- `).
fn mapping(m: &Map<String, Value>, indent: usize, first_inline: bool, out: &mut String) {
    for (i, (key, value)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(indent, out);
        }
        out.push_str(&quoted_or_plain(key));
        out.push(':');
        nested(value, indent, out);
    }
}

fn sequence(a: &[Value], indent: usize, out: &mut String) {
    for item in a {
        pad(indent, out);
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                mapping(m, indent + 2, true, out);
            }
            other => nested(other, indent, out),
        }
    }
}

/// A value after `key:` or `-` written at column `indent`.
fn nested(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            mapping(m, indent + 2, false, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            sequence(a, indent + 2, out);
        }
        Value::String(s) if literal_block_is_exact(s) => {
            out.push(' ');
            literal_block(s, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar or an empty collection on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => {
            // Both versions need a `.` (or an exponent with a sign) to read a float.
            let text = n.to_string();
            if text.contains(['.', 'e', 'E']) {
                text
            } else {
                format!("{text}.0")
            }
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted_or_plain(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Words YAML 1.1 or 1.2 reads as booleans or null in any letter case rehost might meet.
const RESOLVED_WORDS: [&str; 10] = [
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan",
];

fn quoted_or_plain(s: &str) -> String {
    if plain_is_exact(s) {
        s.to_string()
    } else {
        double_quoted(s)
    }
}

/// Whether `s` written plain reads back as the same string in YAML 1.1 and 1.2: it starts with
/// an ASCII letter (so it is no number, date, time, `.inf`, indicator or merge key), holds only
/// letters, digits, `_ . / - : ( ) + = ,` (inside a block-context scalar none of them ends it)
/// and single inner spaces, never `: ` or a trailing `:`, and is none of the resolved words.
fn plain_is_exact(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains("  ")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-:()+=, ".contains(c))
        && !RESOLVED_WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// Characters written as escapes in double quotes: controls, and what YAML reads as a line break
/// (NEL, LS, PS) or refuses in a stream (BOM, DEL, C1, noncharacters).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `s` as a literal block (`|`) reads back exactly: several lines of printable text,
/// no line break but `\n`, a first line that has text and does not start with a space (the
/// block's indentation is detected from it), and no line of spaces alone (YAML would read it as
/// empty).
fn literal_block_is_exact(s: &str) -> bool {
    s.contains('\n')
        && !s.chars().any(|c| c != '\n' && c != '\t' && needs_escape(c))
        && !s.starts_with(['\n', ' ', '\t'])
        && !s
            .split('\n')
            .any(|line| !line.is_empty() && line.trim_matches([' ', '\t']).is_empty())
}

/// `|`, `|-` or `|+` by the trailing newlines (clip keeps one, strip none, keep all), then each
/// line at column `indent`; empty lines stay empty.
fn literal_block(s: &str, indent: usize, out: &mut String) {
    let body = s.trim_end_matches('\n');
    out.push_str(match s.len() - body.len() {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(indent, out);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..(s.len() - body.len()) {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ambiguous_strings_are_quoted_and_plain_ones_stay_plain() {
        // A sample; tests/render_templates.rs reads a long list back through PyYAML and serde_norway.
        for quoted in [
            "a: b",
            "yes",
            "[x",
            "No",
            "=",
            "12:30",
            "*x",
            "~",
            "trail ",
            "0x1F",
            "<<",
            "Null",
            "- x",
            ".inf",
            " lead",
            "2001-12-14",
            "a #b",
            "ON",
            "",
            "1_000",
            "x:",
            "0777",
            "é",
        ] {
            assert!(!plain_is_exact(quoted), "{quoted:?} must be quoted");
        }
        for plain in [
            "AWS::EC2::Instance",
            "Fn::Base64",
            "rehost:app",
            "Instance of server web01",
            "AMI of server db (group data)",
            "a,b+c=d",
            "m5.large",
            "subnet-0a1b2c3d",
            "a/b_c.d-e",
        ] {
            assert!(plain_is_exact(plain), "{plain:?} can stay plain");
        }
    }

    #[test]
    fn line_breaks_and_unreadable_characters_are_escaped() {
        assert_eq!(
            double_quoted("a\"b\\c\td\re\u{85}f\u{2028}g\u{feff}h\u{7f}"),
            "\"a\\\"b\\\\c\\td\\re\\u0085f\\u2028g\\uFEFFh\\u007F\""
        );
    }

    #[test]
    fn literal_blocks_only_when_exact() {
        assert!(literal_block_is_exact("#!/bin/sh\necho hi\n"));
        assert!(literal_block_is_exact("x\n\n\ny\n\n\n"));
        assert!(!literal_block_is_exact("\nx\n"));
        assert!(!literal_block_is_exact("one line"));
        assert!(!literal_block_is_exact("  indented first\nx\n"));
        assert!(!literal_block_is_exact("a\r\nb\n"));
        assert!(!literal_block_is_exact("a\n   \nb\n"));
        assert!(!literal_block_is_exact("a\u{2028}b\n"));
        let mut out = String::new();
        literal_block("a\n\n  b\n\n", 4, &mut out);
        assert_eq!(out, "|+\n    a\n\n      b\n\n");
    }

    #[test]
    fn documents_nest_in_block_style() {
        let doc = json!({
            "Resources": {"Web": {"Type": "AWS::EC2::Instance", "DependsOn": ["A", "yes"],
                "Properties": {"Tags": [{"Key": "on", "Value": "12:30"}], "Count": 2, "Empty": [], "Obj": {}}}},
            "Script": "#!/bin/sh\necho ok\n",
            "F": 1.0,
            "N": null,
        });
        assert_eq!(
            to_yaml(&doc),
            "Resources:\n  Web:\n    Type: AWS::EC2::Instance\n    DependsOn:\n      - A\n      - \"yes\"\n    \
             Properties:\n      Tags:\n        - Key: \"on\"\n          Value: \"12:30\"\n      Count: 2\n      \
             Empty: []\n      Obj: {}\nScript: |\n  #!/bin/sh\n  echo ok\nF: 1.0\n\"N\": null\n"
        );
    }
}
