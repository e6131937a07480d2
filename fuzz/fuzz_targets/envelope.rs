//! The Alexa request-envelope parser (`RequestEnvelope::from_slice`).
//! The body is `voxgate::fuzzing::envelope`, which `tests/fuzz_seeds.rs` also runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    voxgate::fuzzing::envelope(data);
});
