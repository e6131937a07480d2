//! How voxgate's AWS SDK clients behave on the network: every client (STS, KMS, EC2 and
//! every later one) gets connect and operation timeouts, so no call can hang, and reads get
//! one bounded retry while changes get none. The budgets add up to well inside the 8 s
//! Alexa waits for an answer.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// Shortest session STS grants.
pub const MIN_SESSION: time::Duration = time::Duration::seconds(900);
/// Longest session voxgate asks for (role chaining and the seed's promise: one hour).
pub const MAX_SESSION: time::Duration = time::Duration::seconds(3600);

/// Time to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time for one attempt of a call, from sending to the whole answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for a call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_millis(2500);

/// The timeouts of every client.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Reads (and STS, KMS) may be tried twice within the operation timeout.
pub fn read_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(2)
}

/// A change is sent once: a retry after a lost answer could run it twice.
pub fn change_retries() -> RetryConfig {
    RetryConfig::disabled()
}
