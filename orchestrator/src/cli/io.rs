//! Where a command writes: standard output and standard error in the binary, buffers in tests.

use std::io::Write;

/// A command's output (`out`) and its diagnostics and progress (`err`).
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}
