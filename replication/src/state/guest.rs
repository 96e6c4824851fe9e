//! What the state keeps about each server's guest: its latest inspection, keyed by what was
//! read (the fingerprint), and every time an operator let it launch despite its findings.

use time::OffsetDateTime;

use crate::inspect::ServerInspection;

/// A server's cached inspection. `fingerprint` covers every file the inspection read (path,
/// format, size, mtime, inode, device, and the inspection version): a result whose fingerprint
/// matches the disks as they are now is reused instead of reading them again.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionRecord {
    pub fingerprint: String,
    pub inspected_at: OffsetDateTime,
    pub inspection: ServerInspection,
}

/// `--accept-risk SERVER`: a launch let the server through although pre-flight refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRisk {
    /// `test` or `cutover`.
    pub mode: String,
    /// The refusals accepted, as pre-flight worded them.
    pub findings: Vec<String>,
    pub accepted_at: OffsetDateTime,
    /// Who accepted them: the caller's ARN (STS GetCallerIdentity).
    pub caller_arn: String,
}
