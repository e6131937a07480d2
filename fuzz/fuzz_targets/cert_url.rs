//! The `SignatureCertChainUrl` check (`CertChainUrl::parse`).
//! The body is `voxgate::fuzzing::cert_url`, which `tests/fuzz_seeds.rs` also runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    voxgate::fuzzing::cert_url(data);
});
