//! The fuzz targets' bodies (`voxgate::fuzzing`, which `scripts/fuzz` runs under cargo-fuzz)
//! over their seeds and a few thousand mutations of them, made from a fixed seed so that a
//! failure can be replayed. Every call must return (no panic, and none of the bodies'
//! assertions about what an acceptance promises may fail); the known-good seeds must be
//! accepted and the known-bad ones refused, so the bodies still test what they claim to.
//!
//! Seeds: `tests/fixtures/*.json` for the envelope and verification, and
//! `fuzz/seeds/{cert_url,spoken_code}/{good,bad}-*` for the other two (not under
//! `tests/fixtures/`, which holds request bodies only).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use voxgate::fuzzing::{self, VerifyInput};

/// Mutations of the seeds run per target.
const MUTATIONS: usize = 4000;

/// Seeds by file name.
type Seeds = Vec<(String, Vec<u8>)>;

fn files(dir: &Path, suffix: &str) -> Seeds {
    let mut files: Seeds = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.to_string_lossy().ends_with(suffix))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The request bodies under `tests/fixtures/`.
fn requests() -> Seeds {
    files(&repository().join("tests/fixtures"), ".json")
}

/// The seeds of a target under `fuzz/seeds/`, split into good and bad by name.
fn good_and_bad(target: &str) -> (Seeds, Seeds) {
    let (good, bad): (Seeds, Seeds) = files(&repository().join("fuzz/seeds").join(target), "")
        .into_iter()
        .partition(|(name, _)| name.starts_with("good-"));
    assert!(
        !good.is_empty() && bad.iter().all(|(name, _)| name.starts_with("bad-")),
        "{target} seeds are named good-* or bad-*, and some are good"
    );
    (good, bad)
}

/// xorshift64*: enough randomness to mutate with, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// Bytes that tend to matter to JSON, URLs, UTF-8 and numbers.
const INTERESTING: &[u8] = b"\0\t\n \"#%+-./0129:?@[\\]{}\x7f\x80\xbf\xc3\xe2\xef\xff";

/// One to four edits of `seed`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.byte(),
            2 if at < data.len() => data[at] = INTERESTING[rng.below(INTERESTING.len())],
            3 => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            4 => {
                let insert: Vec<u8> = (0..1 + rng.below(8))
                    .map(|_| INTERESTING[rng.below(INTERESTING.len())])
                    .collect();
                data.splice(at..at, insert);
            }
            5 => {
                let from = rng.below(data.len());
                let end = (from + 1 + rng.below(32)).min(data.len());
                let copy = data[from..end].to_vec();
                data.splice(at..at, copy);
            }
            _ => {
                let from = rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

/// Runs `body` over `MUTATIONS` mutations of `seeds`; a panic names the input.
fn run_mutations(target: &str, body: fn(&[u8]) -> bool, seeds: &[Vec<u8>], rng_seed: u64) {
    let mut rng = Rng(rng_seed);
    let mut accepted = 0;
    for _ in 0..MUTATIONS {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, other);
        match std::panic::catch_unwind(|| body(&input)) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "{target} panicked on \"{}\" (see the message above)",
                input.escape_ascii()
            ),
        }
    }
    // Mutations that change nothing that matters keep a seed good; none accepted would mean
    // the mutations never reach past the first check.
    assert!(accepted > 0, "{target}: no mutation was accepted");
}

#[test]
fn envelope_accepts_every_fixture_and_survives_mutations() {
    let seeds = requests();
    for (name, body) in &seeds {
        assert!(fuzzing::envelope(body), "{name} does not parse");
    }
    assert!(!fuzzing::envelope(b"{}"));
    assert!(!fuzzing::envelope(b"\xff"));
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(|(_, body)| body).collect();
    run_mutations("envelope", fuzzing::envelope, &seeds, 0x5eed_0001);
}

#[test]
fn cert_url_accepts_the_good_seeds_only_and_survives_mutations() {
    let (good, bad) = good_and_bad("cert_url");
    for (name, raw) in &good {
        assert!(fuzzing::cert_url(raw), "{name} refused");
    }
    for (name, raw) in &bad {
        assert!(!fuzzing::cert_url(raw), "{name} accepted");
    }
    let seeds: Vec<Vec<u8>> = good.into_iter().chain(bad).map(|(_, raw)| raw).collect();
    run_mutations("cert_url", fuzzing::cert_url, &seeds, 0x5eed_0002);
}

#[test]
fn spoken_code_accepts_the_good_seeds_only_and_survives_mutations() {
    let (good, bad) = good_and_bad("spoken_code");
    for (name, spoken) in &good {
        assert!(fuzzing::spoken_code(spoken), "{name} refused");
    }
    for (name, spoken) in &bad {
        assert!(!fuzzing::spoken_code(spoken), "{name} accepted");
    }
    let seeds: Vec<Vec<u8>> = good.into_iter().chain(bad).map(|(_, s)| s).collect();
    run_mutations("spoken_code", fuzzing::spoken_code, &seeds, 0x5eed_0003);
}

/// Not `#[tokio::test]`: `fuzzing::verify` blocks on a runtime of its own.
#[test]
fn verify_accepts_signed_fixtures_only_and_survives_mutations() {
    use voxgate::fuzzing::{DEV_CA_URL, RESTAMP, SEND_CERT_URL, SEND_SIGNATURE_256, SIGN};
    let signed = SEND_CERT_URL | DEV_CA_URL | SEND_SIGNATURE_256 | SIGN | RESTAMP;
    let input = |flags: u8, body: &[u8]| {
        VerifyInput {
            flags,
            body: body.to_vec(),
            ..VerifyInput::default()
        }
        .encode()
    };
    let mut seeds = Vec::new();
    for (name, body) in requests() {
        // Refused before the replay guard sees the request id, so the signed one below
        // is still a first sighting.
        assert!(
            !fuzzing::verify(&input(signed & !SIGN, &body)),
            "{name} accepted unsigned"
        );
        assert!(
            !fuzzing::verify(&input(signed & !RESTAMP, &body)),
            "{name} accepted with its old timestamp"
        );
        assert!(
            !fuzzing::verify(&input(signed & !DEV_CA_URL, &body)),
            "{name} accepted with an empty certificate URL"
        );
        assert!(fuzzing::verify(&input(signed, &body)), "{name} refused");
        assert!(
            !fuzzing::verify(&input(signed, &body)),
            "{name} accepted twice"
        );
        seeds.push(input(signed, &body));
        seeds.push(input(signed & !SIGN, &body));
    }
    let round_trip = VerifyInput {
        flags: 0x7f,
        cert_chain_url: "https://s3.amazonaws.com/echo.api/x.pem".into(),
        signature_256: "c2lnbmF0dXJl".into(),
        signature_sha1: "c2hhMQ==".into(),
        body: b"{}".to_vec(),
    };
    assert_eq!(VerifyInput::decode(&round_trip.encode()), round_trip);
    run_mutations("verify", fuzzing::verify, &seeds, 0x5eed_0004);
}
