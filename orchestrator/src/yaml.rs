//! A YAML (and therefore JSON) document as a tree of nodes that remember where they stand in the
//! file, so every later problem can be reported as `FILE:LINE:COL`.
//!
//! serde-based YAML crates stop at the first error and forget positions once a value is built;
//! validation here must report all problems at once, each at its node, so the application file is
//! parsed with saphyr-parser's event stream (which carries spans) into this tree instead.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as EventSpan};

// Guards against hostile or accidental inputs, each far above any real application file.
use crate::limits::{MAX_DEPTH, MAX_FILE_BYTES, MAX_TREE_BYTES};

/// A position in the source: 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar with the style it was written in: a quoted `"12"` is a string, a plain `12` a number.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; keys are scalars (checked while loading).
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// A plain `null`, `~` or empty scalar: YAML's way of writing "absent".
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What kind of node this is, for messages such as "expected a string, found a mapping".
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { plain: false, .. } => "a string",
            Value::Scalar { text, plain: true } => plain_scalar_kind(text),
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// What a plain scalar resolves to under YAML 1.2's core schema.
pub fn plain_scalar_kind(text: &str) -> &'static str {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => "null",
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => "a boolean",
        t if t.parse::<i64>().is_ok() => "an integer",
        t if t.parse::<f64>().is_ok() && t.chars().any(|c| c.is_ascii_digit()) => "a number",
        _ => "a string",
    }
}

/// Why a document could not be turned into a tree; only one such error exists per file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// What one node costs besides its text.
const NODE_BYTES: usize = std::mem::size_of::<Node>();

/// Parses exactly one YAML document. An empty document is an error: an application file must
/// say something.
pub fn parse(bytes: &[u8]) -> Result<Node, SyntaxError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(SyntaxError {
            pos: Pos::START,
            message: format!(
                "file is {} bytes, larger than the {} bytes an application file may have",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            return Err(SyntaxError {
                pos: end_of(valid),
                message: format!(
                    "file is not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Loader::new(text).load()
}

fn end_of(text: &str) -> Pos {
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos {
        line: clamp(line),
        col: clamp(col),
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn pos_of(span: &EventSpan) -> Pos {
    Pos {
        line: clamp(span.start.line()),
        col: clamp(span.start.col() + 1),
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
        /// Bytes of the collection so far (its children's costs and its own node).
        cost: usize,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        seen: HashMap<String, Pos>,
        cost: usize,
    },
}

impl Frame {
    fn cost_mut(&mut self) -> &mut usize {
        match self {
            Frame::Seq { cost, .. } | Frame::Map { cost, .. } => cost,
        }
    }
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    stack: Vec<Frame>,
    /// Each anchored node with its cost, so an alias is charged before it is copied.
    anchors: HashMap<usize, (Node, usize)>,
    /// Bytes of the tree built so far, copies included.
    bytes: usize,
}

impl<'a> Loader<'a> {
    fn new(text: &'a str) -> Self {
        Loader {
            parser: Parser::new_from_str(text),
            stack: Vec::new(),
            anchors: HashMap::new(),
            bytes: 0,
        }
    }

    fn next(&mut self) -> Result<(Event<'a>, Pos), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => Ok((event, pos_of(&span))),
            Some(Err(e)) => Err(SyntaxError {
                pos: Pos {
                    line: clamp(e.marker().line()),
                    col: clamp(e.marker().col() + 1),
                },
                message: format!("YAML syntax error: {}", e.info()),
            }),
            None => Err(SyntaxError {
                pos: Pos::START,
                message: "unexpected end of YAML stream".into(),
            }),
        }
    }

    fn load(mut self) -> Result<Node, SyntaxError> {
        let mut root: Option<Node> = None;
        loop {
            let (event, pos) = self.next()?;
            match event {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(SyntaxError {
                            pos,
                            message:
                                "more than one YAML document: an application file holds exactly one"
                                    .into(),
                        });
                    }
                    root = Some(self.document()?);
                }
                Event::DocumentEnd => {}
                other => {
                    return Err(SyntaxError {
                        pos,
                        message: format!("unexpected YAML event {other:?}"),
                    });
                }
            }
        }
        match root {
            Some(node) if !node.is_null() => Ok(node),
            Some(node) => Err(SyntaxError {
                pos: node.pos,
                message: "the file is empty: expected an application definition (apiVersion, kind, name, servers, groups)".into(),
            }),
            None => Err(SyntaxError {
                pos: Pos::START,
                message: "the file is empty: expected an application definition (apiVersion, kind, name, servers, groups)".into(),
            }),
        }
    }

    /// Reads the events of one document up to its end, iteratively (no recursion, so deeply
    /// nested input cannot exhaust the stack).
    fn document(&mut self) -> Result<Node, SyntaxError> {
        loop {
            let (event, pos) = self.next()?;
            // A finished node, its anchor and its cost (already charged to the budget).
            let finished: Option<(Node, usize, usize)> = match event {
                Event::Scalar(text, style, anchor, tag) => {
                    if let Some(tag) = tag
                        && !tag.is_yaml_core_schema()
                    {
                        return Err(SyntaxError {
                            pos,
                            message: format!(
                                "YAML tag `{}{}` is not supported here",
                                tag.handle, tag.suffix
                            ),
                        });
                    }
                    let plain = matches!(style, ScalarStyle::Plain);
                    let cost = NODE_BYTES + text.len();
                    self.charge(cost, pos)?;
                    Some((
                        Node {
                            pos,
                            value: Value::Scalar {
                                text: text.into_owned(),
                                plain,
                            },
                        },
                        anchor,
                        cost,
                    ))
                }
                Event::SequenceStart(anchor, _) => {
                    self.push(
                        Frame::Seq {
                            pos,
                            anchor,
                            items: Vec::new(),
                            cost: NODE_BYTES,
                        },
                        pos,
                    )?;
                    None
                }
                Event::MappingStart(anchor, _) => {
                    self.push(
                        Frame::Map {
                            pos,
                            anchor,
                            entries: Vec::new(),
                            pending_key: None,
                            seen: HashMap::new(),
                            cost: NODE_BYTES,
                        },
                        pos,
                    )?;
                    None
                }
                Event::SequenceEnd => match self.stack.pop() {
                    Some(Frame::Seq {
                        pos,
                        anchor,
                        items,
                        cost,
                    }) => Some((
                        Node {
                            pos,
                            value: Value::Seq(items),
                        },
                        anchor,
                        cost,
                    )),
                    _ => {
                        return Err(SyntaxError {
                            pos,
                            message: "unbalanced sequence end".into(),
                        });
                    }
                },
                Event::MappingEnd => match self.stack.pop() {
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        cost,
                        ..
                    }) => Some((
                        Node {
                            pos,
                            value: Value::Map(entries),
                        },
                        anchor,
                        cost,
                    )),
                    _ => {
                        return Err(SyntaxError {
                            pos,
                            message: "unbalanced mapping end".into(),
                        });
                    }
                },
                Event::Alias(id) => {
                    let Some((_, cost)) = self.anchors.get(&id) else {
                        return Err(SyntaxError {
                            pos,
                            message: "alias refers to an unknown anchor".into(),
                        });
                    };
                    let cost = *cost;
                    // Charged before the copy is made: a refused alias allocates nothing.
                    self.charge(cost, pos)?;
                    let copy = self.anchors[&id].0.value.clone();
                    Some((Node { pos, value: copy }, 0, cost))
                }
                Event::DocumentEnd => {
                    return Err(SyntaxError {
                        pos,
                        message: "document ended inside a collection".into(),
                    });
                }
                other => {
                    return Err(SyntaxError {
                        pos,
                        message: format!("unexpected YAML event {other:?}"),
                    });
                }
            };
            if let Some((node, anchor, cost)) = finished {
                if anchor != 0 {
                    // The anchor's own copy counts too.
                    self.charge(cost, node.pos)?;
                    self.anchors.insert(anchor, (node.clone(), cost));
                }
                if let Some(parent) = self.stack.last_mut() {
                    *parent.cost_mut() = parent.cost_mut().saturating_add(cost);
                }
                match self.stack.last_mut() {
                    None => {
                        // The document's root is complete; consume its end.
                        let (event, pos) = self.next()?;
                        return match event {
                            Event::DocumentEnd => Ok(node),
                            other => Err(SyntaxError {
                                pos,
                                message: format!("unexpected YAML event {other:?}"),
                            }),
                        };
                    }
                    Some(Frame::Seq { items, .. }) => items.push(node),
                    Some(Frame::Map {
                        entries,
                        pending_key,
                        seen,
                        ..
                    }) => {
                        match pending_key.take() {
                            Some(key) => {
                                // A block list or mapping starts on the line after its key;
                                // problems with it as a whole read best at the key
                                // (`servers:`), so it takes the key's position.
                                let mut node = node;
                                if matches!(node.value, Value::Seq(_) | Value::Map(_)) {
                                    node.pos = key.pos;
                                }
                                entries.push((key, node))
                            }
                            None => {
                                let Value::Scalar { text, .. } = &node.value else {
                                    return Err(SyntaxError {
                                    pos: node.pos,
                                    message: "mapping keys must be plain strings, not lists or mappings".into(),
                                });
                                };
                                if let Some(first) = seen.insert(text.clone(), node.pos) {
                                    return Err(SyntaxError {
                                        pos: node.pos,
                                        message: format!(
                                            "duplicate key `{text}` (first set at line {})",
                                            first.line
                                        ),
                                    });
                                }
                                *pending_key = Some(node);
                            }
                        }
                    }
                }
            }
        }
    }

    fn push(&mut self, frame: Frame, pos: Pos) -> Result<(), SyntaxError> {
        self.charge(NODE_BYTES, pos)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "nesting deeper than {MAX_DEPTH} levels is not allowed in an application file"
                ),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Adds `cost` bytes to the tree's size, refusing the node at `pos` past the budget.
    fn charge(&mut self, cost: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.bytes = self.bytes.saturating_add(cost);
        if self.bytes > MAX_TREE_BYTES {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "document expands to more than {} MiB here (anchors and aliases included); \
                     an application file never needs that much: write the values out or use \
                     `defaults` and group settings",
                    MAX_TREE_BYTES >> 20
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, SyntaxError> {
        parse(s.as_bytes())
    }

    #[test]
    fn positions_are_one_based_and_point_at_values() {
        let node = p("a: 1\nb:\n  - x\n  - \"y\"\n").unwrap();
        let Value::Map(entries) = &node.value else {
            panic!()
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 4 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn json_is_accepted() {
        let node = p("{\"name\": \"x\", \"n\": [1, 2]}").unwrap();
        let Value::Map(entries) = &node.value else {
            panic!()
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].1.kind(), "a list");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
    }

    #[test]
    fn empty_and_null_documents_are_errors() {
        assert!(p("").unwrap_err().message.contains("empty"));
        assert!(
            p("# only a comment\n")
                .unwrap_err()
                .message
                .contains("empty")
        );
        assert!(p("~\n").unwrap_err().message.contains("empty"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert!(p(&deep).is_err());
        let mut block = String::new();
        for i in 0..200 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        assert!(p(&block).unwrap_err().message.contains("nesting"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            doc.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        assert!(p(&doc).unwrap_err().message.contains("expands"));
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let node = p("a: &x {k: v}\nb: *x\n").unwrap();
        let Value::Map(entries) = &node.value else {
            panic!()
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
        assert_eq!(entries[1].1.pos.line, 2);
    }

    #[test]
    fn non_utf8_is_reported_with_position() {
        let err = parse(b"name: ok\nbad: \xff\xfe\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, col: 6 });
        assert!(err.message.contains("UTF-8"));
    }

    #[test]
    fn multiple_documents_are_refused() {
        assert!(
            p("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("more than one")
        );
    }
}
