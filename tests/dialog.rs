//! `voxgate dialog`: the interaction model resolves every one of its own samples to its own
//! intent, and a typed conversation runs against a real server with every request signed by
//! a development CA and fully verified.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::scene::*;
use common::*;
use voxgate::dialog::model::{Heard, Model};

fn model_of(locale: &str) -> Model {
    Model::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "skill-package/interactionModels/custom/{locale}.json"
        )),
    )
    .unwrap()
}

fn model() -> Model {
    model_of("en-US")
}

/// A value a person might say for a slot of `slot_type`.
fn value_for(model: &Model, slot_type: &str) -> String {
    match slot_type {
        "AMAZON.NUMBER" => "500".to_owned(),
        _ => model
            .type_values(slot_type)
            .into_iter()
            .next()
            .unwrap_or_else(|| "something".to_owned()),
    }
}

#[test]
fn every_sample_reaches_its_own_intent_with_its_slots() {
    for locale in ["en-US", "en-GB"] {
        every_sample_of(&model_of(locale));
    }
}

fn every_sample_of(model: &Model) {
    let mut wrong = Vec::new();
    for (intent, sample) in model.samples() {
        let mut expected = BTreeMap::new();
        let said: Vec<String> = sample
            .split_whitespace()
            .map(
                |token| match token.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(slot) => {
                        let slot_type = model.slot_type(&intent, slot).unwrap().to_owned();
                        let value = value_for(model, &slot_type);
                        expected.insert(slot.to_owned(), value.clone());
                        value
                    }
                    None => token.to_owned(),
                },
            )
            .collect();
        let said = said.join(" ");
        match model.resolve(&format!("ask cloud gate to {said}")) {
            Heard::Intent { name, slots } if name == intent => {
                let got: BTreeMap<String, String> =
                    slots.into_iter().map(|(k, v)| (k, v.value)).collect();
                if got != expected {
                    wrong.push(format!(
                        "{intent}: '{said}' filled {got:?}, not {expected:?}"
                    ));
                }
            }
            other => wrong.push(format!("{intent}: '{said}' reached {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} samples go astray:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn no_sample_belongs_to_two_intents() {
    let mut seen = BTreeMap::new();
    for (intent, sample) in model().samples() {
        let key = sample.to_lowercase();
        if let Some(other) = seen.insert(key.clone(), intent.clone()) {
            assert_eq!(
                other, intent,
                "'{sample}' is a sample of {other} and {intent}"
            );
        }
    }
}

/// A server trusting a fresh development CA; the CA's directory.
async fn server_trusting_a_dev_ca() -> (Scene, tempfile::TempDir) {
    let ca = tempfile::tempdir().unwrap();
    let made = voxgate::devca::init(&ca.path().join("ca")).unwrap();
    let proxy = common::aws::RecordingProxy::start(&common::aws::MOTO).await;
    let roots = made.roots.clone();
    let certs = made.certs.clone();
    let mut s = scene(Backend::Sqlite).await;
    s.server = TestServer::start_full(&PKI, Backend::Sqlite, &proxy.url, move |args| {
        args.alexa_trust_roots = Some(roots);
        args.alexa_cert_dir = Some(certs);
    })
    .await;
    let acme = s.server.tenant("acme").await;
    s.server.enrol(&acme, "alice", ALICE).await;
    s.server.link(&acme, "prod", &s.account, "eu-west-1").await;
    (s, ca)
}

fn dialog(server: &TestServer, ca: &std::path::Path, script: &str) -> std::process::Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["dialog", "--endpoint"])
        .arg(format!("{}/alexa", server.base_url))
        .arg("--sign")
        .arg(ca.join("ca"))
        .args(["--skill-id", SKILL_ID, "--user-id", ALICE, "--script"])
        .arg(file.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VOXGATE_SKILL_ID")
        .output()
        .unwrap()
}

// The dialog runs as a child process while the server answers on this runtime's threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_conversation_is_signed_verified_and_followed_across_turns() {
    let (s, ca) = server_trusting_a_dev_ca().await;
    let out = dialog(
        &s.server,
        ca.path(),
        "say: ask cloud gate what's running\n\
         expect: web-1\n\
         say: ask cloud gate to stop web one\n\
         expect: ^I'll stop web-1 in prod, Ireland, once you say the code\n\
         # The elicited code slot takes the next line; a partial code costs no try.\n\
         say: one three five\n\
         expect: didn't catch the whole code\n\
         say: cancel\n\
         expect: ^Okay, I cancelled it: Stop web-1 in prod, Ireland\n\
         say: make me a sandwich\n\
         expect: ^$\n\
         # Dialog.ConfirmIntent: yes replaces the waiting operation with the new one.\n\
         say: ask cloud gate to stop web one\n\
         expect: once you say the code\n\
         say: ask cloud gate to reboot web one\n\
         expect: ^You already have an approval waiting: Stop web-1\n\
         say: yes\n\
         expect: ^I'll reboot web-1 in prod, Ireland, once you say the code\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[Dialog.ElicitSlot: code]"), "{stdout}");
    assert!(
        stdout.contains("no intent of the model fits that"),
        "{stdout}"
    );
    assert!(stdout.contains("[Dialog.ConfirmIntent]"), "{stdout}");
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "cancelled", "held", "replaced", "held"]
    );

    // A mismatch fails the run and names the line.
    let out = dialog(
        &s.server,
        ca.path(),
        "say: ask cloud gate what's running\nexpect: nothing is running\n",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: expected /nothing is running/"),
        "{stderr}"
    );

    // Unsigned requests are refused by a verifying server, and the dialog says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["dialog", "--endpoint"])
        .arg(format!("{}/alexa", s.server.base_url))
        .args(["--skill-id", SKILL_ID, "--script"])
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/first-conversation.txt"),
        )
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the skill refused the request (HTTP 400)"),
        "{stderr}"
    );
}
