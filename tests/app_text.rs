//! Application text for the `rehost validate` suites: a small valid application with hooks, and
//! the marker that says where a reported problem must point.

/// Marks where the reported problem must point; removed before the file is written, so
/// positions are never counted by hand.
pub const MARK: char = '⟦';

/// The position of the marker (1-based line and column, in characters) and the text without it.
pub fn locate(marked: &str) -> (String, Option<(usize, usize)>) {
    let mut pos = None;
    let mut text = String::new();
    let (mut line, mut col) = (1, 1);
    for c in marked.chars() {
        if c == MARK {
            pos = Some((line, col));
            continue;
        }
        text.push(c);
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (text, pos)
}

pub const BASE_HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: shop\n";

/// A valid application with hooks: `{launch}` lands in defaults.launch, `{servers}` and
/// `{groups}` replace the lists.
pub fn app(defaults: &str, servers: &str, groups: &str) -> String {
    format!(
        "{BASE_HEAD}defaults:\n  launch:\n    instanceType: m5.large\n{defaults}servers:\n{servers}groups:\n{groups}"
    )
}

pub const WEB01: &str = "  - id: web01\n    os: linux\n    disks:\n      - source: web01.img\n";
pub const WEB_GROUP: &str = "  - name: web\n    servers: [web01]\n";
