//! Request verification (`RequestVerifier::verify`) with arbitrary signature headers and body.
//! The body is `voxgate::fuzzing::verify`, which `tests/fuzz_seeds.rs` also runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    voxgate::fuzzing::verify(data);
});
