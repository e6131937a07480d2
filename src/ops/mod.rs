//! The operation catalog ([`catalog`]): one module per family, each declaring its
//! operations (intent, read or critical, IAM actions), their canonical summaries and
//! digests, session policies, guards and executions through aws-sdk clients. Knows nothing
//! of HTTP or Alexa; the broker hands it sessions, the skill turns its results and errors
//! into sentences.

pub mod alarms;
pub mod ask;
pub mod budgets;
pub mod catalog;
pub mod cleanup;
pub mod cloudfront;
pub mod cost;
pub mod instances;
pub mod names;
pub mod reply;
pub mod security;
pub mod ssm;
pub mod vpn;
pub mod words;

pub use crate::cloud::policy::SessionPolicy;
pub use catalog::Operation;

/// The tag that marks resources voxgate may change (`--managed-tag KEY=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

impl ManagedTag {
    /// Parses `KEY=VALUE`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Self {
                key: key.trim().to_owned(),
                value: value.trim().to_owned(),
            }),
            _ => Err(format!(
                "'{raw}' is not KEY=VALUE: set --managed-tag (VOXGATE_MANAGED_TAG) like voxgate:managed=true"
            )),
        }
    }

    /// Whether `tags` (key, value pairs) carry this tag.
    pub fn marks(&self, tags: &[(String, String)]) -> bool {
        tags.iter().any(|(k, v)| *k == self.key && *v == self.value)
    }
}

impl std::fmt::Display for ManagedTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Why an AWS call failed, in terms the skill can speak about.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The role's permissions do not allow the call.
    #[error("AWS denied the call: {0}")]
    AccessDenied(String),
    /// AWS could not be reached; the request was not sent (or was a read).
    #[error("AWS could not be reached: {0}")]
    Unreachable(String),
    /// A change was sent but no answer came in time: whether it happened is unknown.
    #[error("no answer from AWS to a change: {0}")]
    NoAnswer(String),
    /// Any other AWS error.
    #[error("AWS error {code}: {message}")]
    Aws {
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
}

impl OpsError {
    /// Classifies an SDK error. AWS error messages name ARNs (the assumed role, the
    /// customer's account), so only the code, status and request id are kept.
    pub fn from_sdk<E>(
        error: aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
    ) -> Self
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_ec2::error::SdkError;
        match &error {
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("Unknown").to_owned();
                let status = service.raw().status().as_u16();
                let request_id = service
                    .raw()
                    .headers()
                    .get("x-amzn-requestid")
                    .unwrap_or("-")
                    .to_owned();
                let summary = format!("{code} (HTTP {status}, request {request_id})");
                if code.contains("AccessDenied") || code.contains("UnauthorizedOperation") {
                    Self::AccessDenied(summary)
                } else {
                    Self::Aws {
                        code,
                        message: summary,
                    }
                }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                Self::Unreachable("no answer from AWS".into())
            }
            _ => Self::Aws {
                code: "Unknown".into(),
                message: "unreadable answer from AWS".into(),
            },
        }
    }

    /// Classifies the SDK error of a change (a call that alters the account). An error
    /// answer from AWS means nothing changed; a request that could not even be built, or
    /// whose connection was refused, was never sent. Anything else (a timeout, a connection
    /// lost, an unreadable answer) means the change may or may not have happened.
    pub fn from_sdk_change<E>(
        error: aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
    ) -> Self
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_ec2::error::SdkError;
        match &error {
            // A server error may come after the change was made (EC2 says so of
            // InternalError); only throttling is a refusal that certainly changed nothing.
            SdkError::ServiceError(service)
                if service.raw().status().is_server_error()
                    && !service
                        .err()
                        .code()
                        .is_some_and(|c| c.contains("Throttl") || c == "RequestLimitExceeded") =>
            {
                Self::NoAnswer(format!(
                    "AWS answered HTTP {} ({}) to a change",
                    service.raw().status().as_u16(),
                    service.err().code().unwrap_or("Unknown")
                ))
            }
            SdkError::ServiceError(_) => Self::from_sdk(error),
            SdkError::ConstructionFailure(_) => Self::Aws {
                code: "Unsent".into(),
                message: "the request could not be built".into(),
            },
            SdkError::DispatchFailure(failure)
                if never_sent(
                    failure
                        .as_connector_error()
                        .map(|e| e as &(dyn std::error::Error + 'static)),
                ) =>
            {
                Self::Unreachable("AWS refused the connection".into())
            }
            SdkError::TimeoutError(_) => Self::NoAnswer("no answer from AWS in time".into()),
            _ => Self::NoAnswer("the connection to AWS failed after sending".into()),
        }
    }
}

/// Whether a dispatch failure happened before anything was sent (the connection was
/// refused): then the change certainly did not happen.
fn never_sent(mut source: Option<&(dyn std::error::Error + 'static)>) -> bool {
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_tags_are_parsed_and_matched() {
        let tag = ManagedTag::parse("voxgate:managed=true").expect("ok");
        let mut tags = vec![("voxgate:managed".to_owned(), "false".to_owned())];
        assert!(!tag.marks(&tags));
        tags.push(("voxgate:managed".into(), "true".into()));
        assert!(tag.marks(&tags));
        assert!(ManagedTag::parse("nokey").is_err());
        assert!(ManagedTag::parse("=x").is_err());
    }
}
