//! Claiming a server for one replication on a shared state: with no coordinator, each
//! replication host (a worker, or a one-off `replicate`) takes a lease on the server before
//! it replicates it, renews it while it runs and gives it back at the end. A holder that
//! stops renewing (killed, partitioned) loses it when it expires, and another takes it over.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Who holds a server's lease, as a claim found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// For people: `process 1234 on host`.
    pub holder: String,
    /// When the lease expires unless its holder renews it.
    pub expires_at: OffsetDateTime,
}

impl LeaseHolder {
    /// `process 1234 on host (lease until 2025-03-01T12:00:00Z)`.
    pub fn describe(&self) -> String {
        format!("{} (lease until {})", self.holder, self.expiry())
    }

    /// Logs that this holder's expired lease on `server` was taken over (protocol step 7).
    pub fn warn_taken_over(&self, server: &str) {
        tracing::warn!(
            "took over {server} from {} (lease expired at {})",
            self.holder,
            self.expiry()
        );
    }

    fn expiry(&self) -> String {
        self.expires_at.format(&Rfc3339).unwrap_or_default()
    }
}

/// What a claim of a server found.
#[derive(Debug)]
pub enum ServerClaim {
    /// Ours until the guard is released (or lost). `took_over`: the holder whose lease had
    /// expired (rather than a free or released lease).
    Won {
        guard: Box<dyn LeaseGuard>,
        took_over: Option<LeaseHolder>,
    },
    /// Another holder has it, live.
    Held(LeaseHolder),
}

/// A lease held on a server: renewed in the background, given back by [`LeaseGuard::release`]
/// (or, less promptly, when dropped).
#[async_trait::async_trait]
pub trait LeaseGuard: Send + Sync + std::fmt::Debug {
    /// Where the lease lives, for messages.
    fn location(&self) -> String;
    /// Whether the lease is lost: another holder took it over, or it could not be renewed
    /// before it expired. A holder that lost it must stop at once.
    fn is_lost(&self) -> bool;
    /// Resolves when the lease is lost (never, while it is held).
    async fn lost(&self);
    /// Gives the lease back, so the next claimant finds it free at once.
    async fn release(self: Box<Self>);
}
