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
    /// AWS could not be reached.
    #[error("AWS could not be reached: {0}")]
    Unreachable(String),
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
}
