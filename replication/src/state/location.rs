//! Where the state lives: a SQLite file, or a bucket and prefix on S3 (`s3://BUCKET/PREFIX`),
//! parsed from `--state`, `REHOST_STATE` or the application file's `state:`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::StateError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A SQLite database file.
    File(PathBuf),
    /// Objects under `prefix` (no leading or trailing `/`, maybe empty) in `bucket`.
    S3 { bucket: String, prefix: String },
}

impl StateLocation {
    /// `s3://BUCKET[/PREFIX]` is a place on S3; anything else is a file path, relative ones
    /// taken from `base` (the application file's directory for its `state:` setting, the
    /// working directory for flags and the environment).
    pub fn parse(text: &str, base: Option<&Path>) -> Result<StateLocation, StateError> {
        let bad = |why: &str| StateError::BadLocation {
            text: text.to_string(),
            why: why.to_string(),
        };
        if text.trim().is_empty() {
            return Err(bad("empty"));
        }
        let Some(rest) = strip_scheme(text) else {
            if text.contains("://") {
                return Err(bad("only s3:// locations and file paths are known"));
            }
            let path = Path::new(text);
            return Ok(StateLocation::File(match base {
                Some(base) if path.is_relative() => base.join(path),
                _ => path.to_path_buf(),
            }));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket_name(bucket).map_err(|why| bad(&why))?;
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part.is_empty() && !prefix.is_empty())
        {
            return Err(bad("the prefix has an empty path segment (`//`)"));
        }
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(bad("the prefix has a `.` or `..` segment"));
        }
        if prefix.chars().any(char::is_control) {
            return Err(bad("the prefix has control characters"));
        }
        if prefix.len() > 512 {
            return Err(bad("the prefix is longer than 512 bytes"));
        }
        Ok(StateLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, StateLocation::S3 { .. })
    }
}

fn strip_scheme(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once("://")?;
    scheme.eq_ignore_ascii_case("s3").then_some(rest)
}

/// S3's rules for bucket names (general purpose buckets).
fn check_bucket_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("no bucket name after s3://".into());
    }
    if !(3..=63).contains(&name.len()) {
        return Err(format!(
            "bucket name `{name}` must be 3 to 63 characters long"
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    if !name.chars().all(allowed) {
        return Err(format!(
            "bucket name `{name}` may hold only lowercase letters, digits, `.` and `-`"
        ));
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge(name.chars().next()) || !edge(name.chars().last()) {
        return Err(format!(
            "bucket name `{name}` must begin and end with a letter or digit"
        ));
    }
    if name.contains("..") {
        return Err(format!("bucket name `{name}` has two dots in a row"));
    }
    Ok(())
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::File(path) => write!(f, "{}", path.display()),
            StateLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            StateLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_and_paths() {
        assert_eq!(
            StateLocation::parse("s3://team-state/shop/", None).unwrap(),
            StateLocation::S3 {
                bucket: "team-state".into(),
                prefix: "shop".into()
            }
        );
        assert_eq!(
            StateLocation::parse("S3://team-state", None).unwrap(),
            StateLocation::S3 {
                bucket: "team-state".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            StateLocation::parse("s3://b.example/a/b", None)
                .unwrap()
                .to_string(),
            "s3://b.example/a/b"
        );
        assert_eq!(
            StateLocation::parse("state.db", Some(Path::new("apps"))).unwrap(),
            StateLocation::File("apps/state.db".into())
        );
        assert_eq!(
            StateLocation::parse("/var/rehost/state.db", Some(Path::new("apps"))).unwrap(),
            StateLocation::File("/var/rehost/state.db".into())
        );
    }

    #[test]
    fn bad_locations_say_why() {
        for (text, why) in [
            ("s3://", "no bucket name"),
            ("s3://ab", "3 to 63"),
            ("s3://Team/x", "lowercase"),
            ("s3://-team/x", "begin and end"),
            ("s3://a..b/x", "two dots"),
            ("s3://team/a//b", "empty path segment"),
            ("s3://team/a/../b", "`..`"),
            ("gs://team/x", "only s3://"),
            ("", "empty"),
        ] {
            let err = StateLocation::parse(text, None).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
