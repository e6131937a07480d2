//! The operation catalog: what each operation needs from IAM (its session policy), and its
//! execution through aws-sdk clients. Knows nothing of HTTP or Alexa; the broker hands it
//! clients, the skill turns its results and errors into sentences.

pub mod ec2;
pub mod policy;

pub use policy::SessionPolicy;

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
                Self::Unreachable("no answer from EC2".into())
            }
            _ => Self::Aws {
                code: "Unknown".into(),
                message: "unreadable answer from EC2".into(),
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
                Self::Unreachable("EC2 refused the connection".into())
            }
            SdkError::TimeoutError(_) => Self::NoAnswer("no answer from EC2 in time".into()),
            _ => Self::NoAnswer("the connection to EC2 failed after sending".into()),
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
