//! The `SignatureCertChainUrl` header: Amazon's format rules for the URL of the signing
//! certificate chain ("Verify the signature certificate URL" in *Host a Custom Skill as a
//! Web Service*), applied after dot-segment normalisation, plus a few stricter ones.

use std::fmt;

use ring::digest;
use url::{Host, Url};

/// Why a `SignatureCertChainUrl` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertUrlError {
    /// Not a URL at all.
    #[error("certificate URL is not a valid URL")]
    Malformed,
    /// The scheme is not `https`.
    #[error("certificate URL scheme is not https")]
    Scheme,
    /// The host is not `s3.amazonaws.com`.
    #[error("certificate URL host is not s3.amazonaws.com")]
    Host,
    /// A port other than 443.
    #[error("certificate URL port is not 443")]
    Port,
    /// The normalised path does not start with `/echo.api/`.
    #[error("certificate URL path does not start with /echo.api/")]
    Path,
    /// User name or password in the URL (stricter than Amazon's rules).
    #[error("certificate URL carries credentials")]
    Credentials,
    /// Query or fragment in the URL (stricter than Amazon's rules).
    #[error("certificate URL carries a query or fragment")]
    QueryOrFragment,
    /// A percent-escape or a character outside `[A-Za-z0-9._/-]` in the path (stricter
    /// than Amazon's rules: S3 would decode `%65` to `e`, naming the same object under a
    /// new cache key, so escapes would let anyone make voxgate load a chain again).
    #[error("certificate URL path has an escape or a character outside A-Z a-z 0-9 . _ / -")]
    PathCharacters,
}

/// A `SignatureCertChainUrl` that satisfies every rule, in its normalised form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertChainUrl(Url);

const ALLOWED_HOST: &str = "s3.amazonaws.com";
const REQUIRED_PATH_PREFIX: &str = "/echo.api/";

impl CertChainUrl {
    /// Parses and checks a header value.
    ///
    /// The `url` crate lower-cases scheme and host, removes dot segments (also `%2e%2e`) and
    /// drops the default port, so the checks below see the URL the way an HTTP client
    /// would fetch it. The path comparison stays case-sensitive, as Amazon requires.
    pub fn parse(raw: &str) -> Result<Self, CertUrlError> {
        let url = Url::parse(raw).map_err(|_| CertUrlError::Malformed)?;
        if url.scheme() != "https" {
            return Err(CertUrlError::Scheme);
        }
        match url.host() {
            Some(Host::Domain(host)) if host == ALLOWED_HOST => {}
            _ => return Err(CertUrlError::Host),
        }
        // `port()` is `None` both when absent and when it is the scheme default (443).
        if url.port().is_some() {
            return Err(CertUrlError::Port);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CertUrlError::Credentials);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(CertUrlError::QueryOrFragment);
        }
        if !url.path().starts_with(REQUIRED_PATH_PREFIX) {
            return Err(CertUrlError::Path);
        }
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-');
        if !url.path().bytes().all(plain) {
            return Err(CertUrlError::PathCharacters);
        }
        Ok(Self(url))
    }

    /// The normalised URL as the `url` crate serialises it.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The file name a pre-fetched chain for this URL has in `--alexa-cert-dir`:
    /// lower-case hex SHA-256 of the normalised URL, plus `.pem`.
    pub fn cache_file_name(&self) -> String {
        let hash = digest::digest(&digest::SHA256, self.as_str().as_bytes());
        format!("{}.pem", hex::encode(hash.as_ref()))
    }
}

impl fmt::Debug for CertChainUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CertChainUrl").field(&self.as_str()).finish()
    }
}

impl fmt::Display for CertChainUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_amazons_valid_examples() {
        for raw in [
            "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com/echo.api/../echo.api/echo-api-cert.pem",
            "HTTPS://s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "https://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",
        ] {
            let url = CertChainUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(
                url.as_str(),
                "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
                "{raw} normalises to the canonical URL"
            );
        }
    }

    #[test]
    fn refuses_amazons_invalid_examples_and_stricter_cases() {
        let cases = [
            (
                "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
                CertUrlError::Scheme,
            ),
            (
                "https://notamazon.com/echo.api/echo-api-cert.pem",
                CertUrlError::Host,
            ),
            (
                "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",
                CertUrlError::Path,
            ),
            (
                "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",
                CertUrlError::Path,
            ),
            (
                "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",
                CertUrlError::Port,
            ),
            (
                "https://s3.amazonaws.com/echo.api/../evil/cert.pem",
                CertUrlError::Path,
            ),
            (
                "https://s3.amazonaws.com/echo.api/%2e%2e/evil/cert.pem",
                CertUrlError::Path,
            ),
            (
                "https://s3.amazonaws.com.evil.com/echo.api/cert.pem",
                CertUrlError::Host,
            ),
            (
                "https://evil.com@s3.amazonaws.com/echo.api/cert.pem",
                CertUrlError::Credentials,
            ),
            (
                "https://s3.amazonaws.com/echo.api/cert.pem?x=1",
                CertUrlError::QueryOrFragment,
            ),
            (
                "https://s3.amazonaws.com/echo.api/cert.pem#x",
                CertUrlError::QueryOrFragment,
            ),
            ("https://52.216.0.1/echo.api/cert.pem", CertUrlError::Host),
            (
                "ftp://s3.amazonaws.com/echo.api/cert.pem",
                CertUrlError::Scheme,
            ),
            (
                "https://s3.amazonaws.com/echo.api/%65cho-api-cert-4.pem",
                CertUrlError::PathCharacters,
            ),
            (
                "https://s3.amazonaws.com/echo.api/echo%2Dapi-cert.pem",
                CertUrlError::PathCharacters,
            ),
            (
                "https://s3.amazonaws.com/echo.api/echo api.pem",
                CertUrlError::PathCharacters,
            ),
            (
                "https://s3.amazonaws.com/echo.api/echo-api-cert~1.pem",
                CertUrlError::PathCharacters,
            ),
            (
                "https://s3.amazonaws.com/echo.api/écho.pem",
                CertUrlError::PathCharacters,
            ),
            ("not a url", CertUrlError::Malformed),
            ("", CertUrlError::Malformed),
        ];
        for (raw, expected) in cases {
            assert_eq!(CertChainUrl::parse(raw), Err(expected), "{raw}");
        }
    }

    #[test]
    fn cache_file_name_is_the_sha256_of_the_normalised_url() {
        let url = CertChainUrl::parse("HTTPS://S3.amazonaws.com:443/echo.api/x/../cert.pem")
            .expect("valid");
        assert_eq!(url.as_str(), "https://s3.amazonaws.com/echo.api/cert.pem");
        let expected = digest::digest(&digest::SHA256, url.as_str().as_bytes());
        assert_eq!(
            url.cache_file_name(),
            format!("{}.pem", hex::encode(expected))
        );
        assert_eq!(url.cache_file_name().len(), 64 + 4);
    }
}
