//! The bodies of the fuzz targets under `fuzz/` (cargo-fuzz, run by `scripts/fuzz`), kept in
//! the library so that `tests/fuzz_seeds.rs` runs the very same code over the seeds with a
//! plain `cargo test`, without cargo-fuzz or a nightly compiler.
//!
//! Each body takes arbitrary bytes, must not panic on any of them, and says whether the
//! input was accepted. Where an acceptance promises something (a certificate URL that names
//! Amazon's bucket, a code of six digits, a request the signing key really signed), the body
//! asserts it, so that the fuzzer hunts for wrong acceptances as well as for panics.
//!
//! Not part of voxgate's interface. Owns nothing but a development CA of its own, made in the
//! temporary directory for [`verify`] and removed once its chain is cached; touches no store,
//! network or configuration.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::alexa::cert_url::CertChainUrl;
use crate::alexa::chain::{ChainSource, ChainStore, TrustRoots};
use crate::alexa::envelope::{
    CanFulfillIntentRequest, IntentRequest, RequestEnvelope, RequestKind,
};
use crate::alexa::verify::{Mode, RequestVerifier, SignatureHeaders};
use crate::clock::SystemClock;
use crate::devca;
use crate::gate::SpokenCode;

/// The skill id the requests under `tests/fixtures/` name; [`verify`] accepts no other.
pub const SKILL_ID: &str = "amzn1.ask.skill.11111111-2222-3333-4444-555555555555";

/// Parses a request body ([`RequestEnvelope::from_slice`]) and reads from it what handlers
/// read. True if it parsed.
pub fn envelope(data: &[u8]) -> bool {
    let Ok(envelope) = RequestEnvelope::from_slice(data) else {
        return false;
    };
    black_box(envelope.application_ids());
    black_box(envelope.user());
    black_box(envelope.session_attributes());
    black_box(envelope.request.type_name());
    if let RequestKind::Intent(IntentRequest { intent, .. })
    | RequestKind::CanFulfillIntent(CanFulfillIntentRequest { intent }) = &envelope.request.kind
    {
        for (name, slot) in &intent.slots {
            black_box(intent.slot_value(name));
            black_box(slot.resolved());
        }
    }
    // `Debug` is hand-written where it redacts tokens.
    black_box(format!("{envelope:?}"));
    true
}

/// Checks a `SignatureCertChainUrl` value ([`CertChainUrl::parse`]; input that is not UTF-8
/// is refused, as HTTP header values that are not text are). True if it was accepted, which
/// asserts that the normalised URL names an object under Amazon's `echo.api/` and is its own
/// normal form.
pub fn cert_url(data: &[u8]) -> bool {
    let Ok(raw) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(url) = CertChainUrl::parse(raw) else {
        return false;
    };
    let normalised = url.as_str();
    let path = normalised.strip_prefix("https://s3.amazonaws.com");
    assert!(
        path.is_some_and(|p| p.starts_with("/echo.api/")),
        "{raw:?} was accepted as {normalised}, outside https://s3.amazonaws.com/echo.api/"
    );
    assert!(
        path.is_some_and(|p| p
            .split('/')
            .all(|segment| segment != "." && segment != "..")),
        "{raw:?} was accepted as {normalised}, which keeps a dot segment"
    );
    assert!(
        !normalised.contains(['?', '#', '%', '@']),
        "{raw:?} was accepted as {normalised}, with a query, fragment, escape or credentials"
    );
    assert_eq!(
        CertChainUrl::parse(normalised).as_ref(),
        Ok(&url),
        "the normal form of {raw:?} is not its own normal form"
    );
    assert_eq!(url.cache_file_name().len(), 64 + ".pem".len());
    true
}

/// Parses what Alexa heard as a one-time code ([`SpokenCode::parse`]; input that is not
/// UTF-8 is refused). True if it was accepted, which asserts that the code is six ASCII
/// digits ending in what was said, and that `Debug` does not show it.
pub fn spoken_code(data: &[u8]) -> bool {
    let Ok(spoken) = std::str::from_utf8(data) else {
        return false;
    };
    let Some(code) = SpokenCode::parse(spoken) else {
        return false;
    };
    let digits = code.as_str();
    assert!(
        digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()),
        "{spoken:?} was accepted as a code that is not six digits"
    );
    assert!(
        digits.ends_with(spoken.trim()),
        "{spoken:?} was accepted as another code"
    );
    assert_eq!(format!("{code:?}"), "SpokenCode(<redacted>)");
    true
}

/// [`VerifyInput::flags`]: a `SignatureCertChainUrl` header is sent.
pub const SEND_CERT_URL: u8 = 1 << 0;
/// [`VerifyInput::flags`]: a `Signature-256` header is sent.
pub const SEND_SIGNATURE_256: u8 = 1 << 1;
/// [`VerifyInput::flags`]: a `Signature` (SHA-1) header is sent.
pub const SEND_SIGNATURE_SHA1: u8 = 1 << 2;
/// [`VerifyInput::flags`]: the request carries proxy headers.
pub const PROXIED: u8 = 1 << 3;
/// [`VerifyInput::flags`]: the certificate URL sent is the development CA's
/// ([`devca::CERT_URL`]) instead of [`VerifyInput::cert_chain_url`].
pub const DEV_CA_URL: u8 = 1 << 4;
/// [`VerifyInput::flags`]: the `Signature-256` sent is the development CA's signature of the
/// body instead of [`VerifyInput::signature_256`], so that the checks after the signature's
/// are reached.
pub const SIGN: u8 = 1 << 5;
/// [`VerifyInput::flags`]: before signing, the body's `request.timestamp` (if it is a JSON
/// object with a `request` object) is set to now, so that the checks after the timestamp's
/// (skill id, replay) are reached.
pub const RESTAMP: u8 = 1 << 6;

/// What [`verify`] makes of its bytes: one flag byte, three length bytes, the three header
/// values of those lengths (read as UTF-8, replacing what is not), and the body (the rest).
/// Input that ends early leaves the later parts empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyInput {
    /// `SEND_CERT_URL`, `SIGN`, … of this module.
    pub flags: u8,
    /// `SignatureCertChainUrl`, if sent and not replaced ([`DEV_CA_URL`]).
    pub cert_chain_url: String,
    /// `Signature-256`, if sent and not replaced ([`SIGN`]).
    pub signature_256: String,
    /// `Signature` (SHA-1), if sent.
    pub signature_sha1: String,
    /// The request body.
    pub body: Vec<u8>,
}

impl VerifyInput {
    /// Reads fuzz input.
    pub fn decode(data: &[u8]) -> Self {
        let (flags, rest) = data.split_first().map_or((0, data), |(f, rest)| (*f, rest));
        let (lengths, mut rest) = rest.split_at(rest.len().min(3));
        let mut header = |i: usize| {
            let length = lengths
                .get(i)
                .map_or(0, |n| usize::from(*n))
                .min(rest.len());
            let (value, tail) = rest.split_at(length);
            rest = tail;
            String::from_utf8_lossy(value).into_owned()
        };
        let cert_chain_url = header(0);
        let signature_256 = header(1);
        let signature_sha1 = header(2);
        Self {
            flags,
            cert_chain_url,
            signature_256,
            signature_sha1,
            body: rest.to_vec(),
        }
    }

    /// Writes fuzz input that [`VerifyInput::decode`] reads back (header values are cut to
    /// 255 bytes), for seeds.
    pub fn encode(&self) -> Vec<u8> {
        let headers = [
            &self.cert_chain_url,
            &self.signature_256,
            &self.signature_sha1,
        ]
        .map(|value| &value.as_bytes()[..value.len().min(usize::from(u8::MAX))]);
        let mut data = vec![self.flags];
        data.extend(
            headers
                .iter()
                .map(|value| u8::try_from(value.len()).unwrap_or(u8::MAX)),
        );
        for value in headers {
            data.extend_from_slice(value);
        }
        data.extend_from_slice(&self.body);
        data
    }
}

/// Verifies a request ([`RequestVerifier::verify`], every check switched on) made from
/// [`VerifyInput`] by a verifier that trusts only a development CA and accepts only
/// [`SKILL_ID`]. True if it was accepted, which asserts that the development CA signed it.
///
/// Blocks on a runtime of its own: not to be called from within a Tokio runtime.
pub fn verify(data: &[u8]) -> bool {
    let input = VerifyInput::decode(data);
    let flag = |f: u8| input.flags & f != 0;
    let harness = HARNESS.get_or_init(Harness::start);
    let body = if flag(RESTAMP) {
        restamp(&input.body, OffsetDateTime::now_utc())
    } else {
        input.body.clone()
    };
    let signature_256 = match flag(SIGN).then(|| harness.signer.sign(&body)) {
        Some(Ok(signature)) => signature,
        // Signing failed (the system random source): not what is under test.
        Some(Err(_)) => return false,
        None => input.signature_256.clone(),
    };
    let cert_chain_url = if flag(DEV_CA_URL) {
        devca::CERT_URL
    } else {
        input.cert_chain_url.as_str()
    };
    let headers = SignatureHeaders {
        cert_chain_url: flag(SEND_CERT_URL).then_some(cert_chain_url),
        signature_256: flag(SEND_SIGNATURE_256).then_some(signature_256.as_str()),
        signature_sha1: flag(SEND_SIGNATURE_SHA1).then_some(input.signature_sha1.as_str()),
        proxied: flag(PROXIED),
    };
    let accepted = harness
        .runtime
        .block_on(harness.verifier.verify(headers, &body))
        .is_ok();
    if accepted {
        // Nobody but the development CA can sign, so anything else accepted is a forgery
        // that got through.
        let signed = flag(SEND_SIGNATURE_256) && flag(SIGN);
        let dev_ca_chain = flag(SEND_CERT_URL)
            && CertChainUrl::parse(cert_chain_url).is_ok_and(|url| url == harness.dev_ca_url);
        assert!(
            signed && dev_ca_chain,
            "accepted a request the development CA did not sign: {input:?}"
        );
    }
    accepted
}

/// `body` with `request.timestamp` set to `now`, if it has one to set.
fn restamp(body: &[u8], now: OffsetDateTime) -> Vec<u8> {
    let Ok(mut json) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let (Some(request), Ok(now)) = (
        json.get_mut("request").and_then(Value::as_object_mut),
        now.format(&Rfc3339),
    ) else {
        return body.to_vec();
    };
    request.insert("timestamp".to_owned(), Value::String(now));
    json.to_string().into_bytes()
}

/// Made once per process (key generation takes a while).
static HARNESS: OnceLock<Harness> = OnceLock::new();

/// A verifier as `voxgate serve` builds it against a development CA (see
/// `benches/hot_paths.rs`), the CA's signer, and a runtime to run it on.
struct Harness {
    runtime: tokio::runtime::Runtime,
    verifier: RequestVerifier,
    signer: devca::Signer,
    dev_ca_url: CertChainUrl,
}

impl Harness {
    /// Panics if the harness cannot be made: a fuzz run without it would test nothing.
    fn start() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir =
            std::env::temp_dir().join(format!("voxgate-fuzzing-{}-{nanos}", std::process::id()));
        let made = devca::init(&dir).expect("a development CA in the temporary directory");
        let signer = devca::Signer::load(&dir).expect("the development CA's signer");
        let roots = TrustRoots::from_pem_file(&made.roots).expect("the development CA's root");
        let chains = ChainStore::new(roots, ChainSource::Directory(made.certs))
            .expect("a chain store over the development CA");
        let verifier = RequestVerifier::new(
            Mode::Enforce(Box::new(chains)),
            vec![SKILL_ID.to_owned()],
            Arc::new(SystemClock),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        // One good signature moves the chain into the cache of chains in use, where it
        // stays: only a good signature puts a chain there, and only this CA makes one. The
        // files are not needed after that, and nothing is left in the temporary directory.
        let warm_up = b"{}";
        let signature = signer.sign(warm_up).expect("a signature");
        let headers = SignatureHeaders {
            cert_chain_url: Some(devca::CERT_URL),
            signature_256: Some(&signature),
            ..SignatureHeaders::default()
        };
        // Refused as malformed, after the signature was found good.
        let _ = runtime.block_on(verifier.verify(headers, warm_up));
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            runtime,
            verifier,
            signer,
            dev_ca_url: CertChainUrl::parse(devca::CERT_URL).expect("the development CA's URL"),
        }
    }
}
