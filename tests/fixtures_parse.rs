//! Realistic request bodies under `tests/fixtures/` parse into the typed envelope with the
//! fields a handler needs.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use voxgate::alexa::RequestEnvelope;
use voxgate::alexa::envelope::{ConfirmationStatus, DialogState, RequestKind, SessionEndedReason};

fn parse(name: &str) -> RequestEnvelope {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"));
    RequestEnvelope::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn launch() {
    let env = parse("launch");
    assert!(matches!(env.request.kind, RequestKind::Launch));
    assert_eq!(env.request.locale.as_deref(), Some("en-US"));
    assert_eq!(
        env.user().unwrap().user_id,
        "amzn1.ask.account.AEXAMPLEUSER7QX3"
    );
    assert!(env.session.as_ref().unwrap().new);
    assert_eq!(
        env.application_ids(),
        vec![
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555",
            "amzn1.ask.skill.11111111-2222-3333-4444-555555555555"
        ]
    );
}

#[test]
fn intent_with_resolutions() {
    let env = parse("intent-with-resolutions");
    let RequestKind::Intent(request) = &env.request.kind else {
        panic!("not an intent")
    };
    assert_eq!(request.dialog_state, Some(DialogState::InProgress));
    assert_eq!(request.intent.name, "InstanceStatusIntent");
    assert_eq!(request.intent.slot_value("instance"), Some("web server"));
    assert_eq!(
        request.intent.slot_value("region"),
        None,
        "an unfilled slot has no value"
    );
    let resolved = request.intent.slots["instance"].resolved().unwrap();
    assert_eq!(resolved.name, "web-1");
    assert_eq!(resolved.id.as_deref(), Some("WEB_1"));
    assert_eq!(
        env.session_attributes()["challengeId"],
        "ch_01JD5R0000000000000000"
    );
    // The account-linking token is there, but never printed.
    assert!(env.user().unwrap().access_token.is_some());
    assert!(!format!("{env:?}").contains("fixture-oauth-access-token"));
}

#[test]
fn dialog_states() {
    for (name, state, value) in [
        ("dialog-started", DialogState::Started, None),
        ("dialog-in-progress", DialogState::InProgress, Some("81804")),
        ("dialog-completed", DialogState::Completed, Some("81804")),
    ] {
        let env = parse(name);
        let RequestKind::Intent(request) = &env.request.kind else {
            panic!("{name}")
        };
        assert_eq!(request.dialog_state, Some(state), "{name}");
        assert_eq!(request.intent.confirmation_status, ConfirmationStatus::None);
        // Spoken numbers stay strings: "81804" keeps no leading zero but is not a number.
        assert_eq!(request.intent.slot_value("code"), value, "{name}");
    }
}

#[test]
fn session_ended_with_error() {
    let env = parse("session-ended-error");
    let RequestKind::SessionEnded(ended) = &env.request.kind else {
        panic!()
    };
    assert_eq!(ended.reason, Some(SessionEndedReason::Error));
    let error = ended.error.as_ref().unwrap();
    assert_eq!(error.error_type, "INVALID_RESPONSE");
    assert!(error.message.as_deref().unwrap().contains("exception"));
}

#[test]
fn can_fulfill() {
    let env = parse("can-fulfill");
    let RequestKind::CanFulfillIntent(question) = &env.request.kind else {
        panic!()
    };
    assert_eq!(question.intent.name, "VerifyCodeIntent");
    assert_eq!(question.intent.slot_value("code"), Some("123456"));
}

#[test]
fn skill_events() {
    let env = parse("skill-event-enabled");
    let RequestKind::SkillEvent(event) = &env.request.kind else {
        panic!()
    };
    assert_eq!(event.event_type, "AlexaSkillEvent.SkillEnabled");
    assert!(env.session.is_none());
    assert_eq!(env.application_ids().len(), 1);

    let env = parse("skill-event-account-linked");
    let RequestKind::SkillEvent(event) = &env.request.kind else {
        panic!()
    };
    assert_eq!(event.event_type, "AlexaSkillEvent.SkillAccountLinked");
    assert!(event.body.as_ref().unwrap().get("accessToken").is_some());
    assert!(
        !format!("{env:?}").contains("fixture-linked-token"),
        "Debug redacts the token"
    );
}

#[test]
fn unknown_type() {
    let env = parse("unknown-type");
    assert_eq!(env.request.type_name(), "Alexa.Presentation.APL.UserEvent");
    assert!(matches!(env.request.kind, RequestKind::Other { .. }));
}

#[test]
fn every_fixture_is_covered_above() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        parse(name.trim_end_matches(".json"));
    }
    assert_eq!(names.len(), 10, "{names:?}: add a test for a new fixture");
}
