//! Errors the CLI maps to exit codes: invalid input (2) versus runtime failure (1).

use std::fmt;

/// The user's input is wrong (bad file, bad flag, failed pre-flight, a refusal): exit code 2.
#[derive(Debug)]
pub struct InvalidInput {
    pub message: String,
}

impl InvalidInput {
    pub fn new(message: impl Into<String>) -> Self {
        InvalidInput {
            message: message.into(),
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidInput {}
