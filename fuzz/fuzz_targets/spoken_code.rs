//! The spoken one-time code parser (`SpokenCode::parse`).
//! The body is `voxgate::fuzzing::spoken_code`, which `tests/fuzz_seeds.rs` also runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    voxgate::fuzzing::spoken_code(data);
});
