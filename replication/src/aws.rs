//! The one place that configures how rehost talks to AWS: region, retries and timeouts.
//!
//! Retries belong to the SDK's standard strategy alone (exponential backoff with jitter, its
//! classifier retries throttling, 5xx, I/O errors and timeouts, and fails fast on everything
//! else). No other layer of rehost retries an AWS call.

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub const ENV_MAX_ATTEMPTS: &str = "REHOST_AWS_MAX_ATTEMPTS";
pub const ENV_ATTEMPT_TIMEOUT: &str = "REHOST_AWS_ATTEMPT_TIMEOUT_SECS";
pub const ENV_CONNECT_TIMEOUT: &str = "REHOST_AWS_CONNECT_TIMEOUT_SECS";
pub const ENV_READ_TIMEOUT: &str = "REHOST_AWS_READ_TIMEOUT_SECS";
pub const ENV_OPERATION_TIMEOUT: &str = "REHOST_AWS_OPERATION_TIMEOUT_SECS";
pub const ENV_MAX_BACKOFF: &str = "REHOST_AWS_MAX_BACKOFF_SECS";

pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A 512 KiB block over a slow uplink must fit in one attempt.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Covers every attempt and the backoff between them.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(20);

/// How to reach AWS. `None` means: the environment variable if set, else the default.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Overrides the region of the standard chain (env, profile, IMDS).
    pub region: Option<String>,
    pub max_attempts: Option<u32>,
    pub connect_timeout: Option<Duration>,
    /// Time to the first byte of a response.
    pub read_timeout: Option<Duration>,
    /// One attempt, request and response.
    pub attempt_timeout: Option<Duration>,
    /// All attempts of one operation together.
    pub operation_timeout: Option<Duration>,
    pub max_backoff: Option<Duration>,
}

/// The values in force after applying options, environment and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAwsOptions {
    pub region: Option<String>,
    pub max_attempts: u32,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl AwsOptions {
    pub fn resolve(&self) -> ResolvedAwsOptions {
        let max_attempts = self
            .max_attempts
            .or_else(|| env_u64(ENV_MAX_ATTEMPTS).map(|n| n.clamp(1, 100) as u32))
            .unwrap_or(DEFAULT_MAX_ATTEMPTS)
            .max(1);
        let connect_timeout = self
            .connect_timeout
            .or_else(|| env_secs(ENV_CONNECT_TIMEOUT))
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let attempt_timeout = self
            .attempt_timeout
            .or_else(|| env_secs(ENV_ATTEMPT_TIMEOUT))
            .unwrap_or(DEFAULT_ATTEMPT_TIMEOUT);
        // A read timeout longer than the attempt timeout would never fire.
        let read_timeout = self
            .read_timeout
            .or_else(|| env_secs(ENV_READ_TIMEOUT))
            .unwrap_or(DEFAULT_READ_TIMEOUT)
            .min(attempt_timeout);
        let max_backoff = self
            .max_backoff
            .or_else(|| env_secs(ENV_MAX_BACKOFF))
            .unwrap_or(DEFAULT_MAX_BACKOFF);
        // Never shorter than the attempts and backoffs it has to cover.
        let floor = attempt_timeout * max_attempts + max_backoff * max_attempts.saturating_sub(1);
        let operation_timeout = self
            .operation_timeout
            .or_else(|| env_secs(ENV_OPERATION_TIMEOUT))
            .unwrap_or(DEFAULT_OPERATION_TIMEOUT.max(floor));
        ResolvedAwsOptions {
            region: self.region.clone(),
            max_attempts,
            connect_timeout,
            read_timeout,
            attempt_timeout,
            operation_timeout,
            initial_backoff: DEFAULT_INITIAL_BACKOFF.min(max_backoff),
            max_backoff,
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!("ignoring {name}={value:?}: not a whole number");
            None
        }
    }
}

fn env_secs(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        _ => {
            tracing::warn!("ignoring {name}={value:?}: not a positive number of seconds");
            None
        }
    }
}

/// Applies rehost's retry and timeout policy to a loader. `load_sdk_config` uses it on the
/// standard chain; tests use it on a loader pointed at the emulator.
pub fn configure_loader(loader: ConfigLoader, opts: &AwsOptions) -> ConfigLoader {
    let r = opts.resolve();
    let retry = RetryConfig::standard()
        .with_max_attempts(r.max_attempts)
        .with_initial_backoff(r.initial_backoff)
        .with_max_backoff(r.max_backoff);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(r.connect_timeout)
        .read_timeout(r.read_timeout)
        .operation_attempt_timeout(r.attempt_timeout)
        .operation_timeout(r.operation_timeout)
        .build();
    let mut loader = loader.retry_config(retry).timeout_config(timeouts);
    if let Some(region) = r.region {
        loader = loader.region(Region::new(region));
    }
    loader
}

/// The SDK configuration for every AWS client of rehost: the standard credential and region
/// chain (env, profiles, SSO, IMDS, `AWS_ENDPOINT_URL`) with rehost's retries and timeouts.
pub async fn load_sdk_config(opts: &AwsOptions) -> SdkConfig {
    configure_loader(aws_config::defaults(BehaviorVersion::latest()), opts)
        .load()
        .await
}

/// "a: b: c" from an error and its sources, each by its Display (never a Debug dump), skipping
/// a cause its parent already quotes.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// What an AWS call failed with, reduced to what an operator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFailure {
    pub operation: &'static str,
    /// The AWS error code (`AccessDeniedException`, `InvalidSnapshot.NotFound`), or `HTTP <status>`,
    /// `Timeout`, `DispatchFailure` when the service never answered with a code.
    pub code: String,
    pub message: String,
}

impl fmt::Display for AwsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed with AWS error {}: {}",
            self.operation, self.code, self.message
        )
    }
}

impl AwsFailure {
    pub fn from_sdk<E>(
        operation: &'static str,
        err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = match err {
            SdkError::ServiceError(se) => match se.err().code() {
                Some(code) => code.to_string(),
                None => format!("HTTP {}", se.raw().status().as_u16()),
            },
            SdkError::TimeoutError(_) => "Timeout".into(),
            SdkError::DispatchFailure(d) if d.is_timeout() => "Timeout".into(),
            SdkError::DispatchFailure(_) => "DispatchFailure".into(),
            SdkError::ResponseError(r) => {
                format!("HTTP {} (unreadable response)", r.raw().status().as_u16())
            }
            SdkError::ConstructionFailure(_) => "ConstructionFailure".into(),
            _ => "Unknown".into(),
        };
        let message = match err.message() {
            Some(m) => m.to_string(),
            None => cause_chain(err),
        };
        AwsFailure {
            operation,
            code,
            message,
        }
    }

    /// Error codes that mean "the resource does not exist (any more)".
    pub fn is_not_found(&self) -> bool {
        self.code.contains("NotFound") || self.code == "ResourceNotFoundException"
    }
}
