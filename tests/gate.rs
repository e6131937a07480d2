//! The OTP gate through `POST /alexa`, against moto and both store backends: a critical
//! intent is held until the code shown for it is spoken, and then runs exactly once.
//! Each invariant of DESIGN.md's gate has its own test.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::aws::{ec2_in, fresh_account_id, seed_instance};
use common::scene::*;
use common::*;
use serde_json::{Value, json};
use time::Duration;
use voxgate::clock::ManualClock;

on_both_backends!(stop_a_managed_instance_by_voice);
async fn stop_a_managed_instance_by_voice(backend: Backend) {
    let s = scene(backend).await;
    let held = s
        .server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "web one"))
        .await;
    let said = speech(&held);
    assert!(said.starts_with("Stop instance web-1 (i-"), "{said}");
    assert!(
        said.ends_with(
            "in account prod, eu-west-1. To approve, say the code shown in your voxgate app."
        ),
        "{said}"
    );
    let directive = &held["response"]["directives"][0];
    assert_eq!(directive["type"], "Dialog.ElicitSlot");
    assert_eq!(directive["slotToElicit"], "code");
    assert_eq!(directive["updatedIntent"]["name"], "VerifyCodeIntent");
    assert_eq!(held["response"]["shouldEndSession"], false);
    let id = challenge_id(&held);
    let code = code_for(&s, &id).await;
    // The card shows what is approved, never the code.
    let card = held["response"]["card"]["content"].as_str().unwrap();
    assert!(card.contains("Stop instance web-1"), "{card}");
    assert!(
        !held.to_string().contains(&code),
        "the code appears in the response"
    );
    assert_eq!(
        state_of(&s.ec2, &s.web1).await,
        "running",
        "nothing runs before the code"
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);

    let done = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
    assert_eq!(done["response"]["shouldEndSession"], true);
    assert_eq!(count(&s.proxy, "StopInstances"), 1);
    assert!(matches!(
        state_of(&s.ec2, &s.web1).await.as_str(),
        "stopping" | "stopped"
    ));

    assert_eq!(outcomes(&s.server).await, ["held", "confirmed", "executed"]);
    let records = s.server.store.audit_records(None, 0, 10).await.unwrap();
    assert!(
        records[2].aws_request_id.is_some(),
        "the AWS request id is recorded"
    );
    assert!(
        records
            .iter()
            .all(|r| r.summary.starts_with("Stop instance web-1"))
    );
    assert_eq!(s.server.gate.audit().verify(&records), Ok(()));
    // No code or key in the audit log.
    assert!(!serde_json::to_string(&records).unwrap().contains(&code));
}

on_both_backends!(the_session_for_the_operation_allows_only_that_action_on_that_instance);
async fn the_session_for_the_operation_allows_only_that_action_on_that_instance(backend: Backend) {
    let s = scene(backend).await;
    let (_, id) = s.hold("RebootInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let done = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(speech(&done), "Rebooting web-1 now.");
    let calls = s.proxy.assume_role_calls();
    let op_call = calls
        .iter()
        .find(|c| c.field("Policy").unwrap().contains("RebootInstances"))
        .expect("an AssumeRole for the operation");
    let policy: Value = serde_json::from_str(&op_call.field("Policy").unwrap()).unwrap();
    assert_eq!(
        policy["Statement"],
        json!([{
            "Effect": "Allow",
            "Action": ["ec2:RebootInstances"],
            "Resource": [format!("arn:aws:ec2:eu-west-1:{}:instance/{}", s.account, s.web1)]
        }])
    );
    assert_eq!(op_call.field("DurationSeconds").unwrap(), "900");
    assert_eq!(op_call.field("SourceIdentity").unwrap(), "alice");
}

#[tokio::test]
async fn a_wrong_code_is_refused_and_asked_again() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let wrong = if code == "123456" { "654321" } else { "123456" };
    let response = s.server.say(say_code(&s.server, ALICE, &id, wrong)).await;
    assert_eq!(
        speech(&response),
        "That code didn't match; you have 4 tries left."
    );
    assert_eq!(
        response["response"]["directives"][0]["slotToElicit"],
        "code"
    );
    assert_eq!(challenge_id(&response), id);
    // Not even a number.
    let response = s.server.say(say_code(&s.server, ALICE, &id, "12a")).await;
    assert_eq!(
        speech(&response),
        "That code didn't match; you have 3 tries left."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(state_of(&s.ec2, &s.web1).await, "running");
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "wrong-code", "wrong-code"]
    );
}

#[tokio::test]
async fn another_users_code_does_not_approve() {
    let s = scene(Backend::Sqlite).await;
    // Mallory, in another tenant with her own account, holds the same kind of operation.
    let globex = s.server.tenant("globex").await;
    let mallory = s.server.enrol(&globex, "mallory", MALLORY).await;
    let other_account = fresh_account_id();
    seed_instance(
        &ec2_in(&other_account, "eu-west-1").await,
        "web-1",
        MANAGED,
        true,
    )
    .await;
    s.server
        .link(&globex, "prod", &other_account, "eu-west-1")
        .await;
    let hers = s
        .server
        .say(critical(&s.server, MALLORY, "StopInstanceIntent", "web-1"))
        .await;
    let her_challenge = s
        .server
        .gate
        .challenge_of(&mallory, &challenge_id(&hers))
        .await
        .unwrap()
        .unwrap();
    let her_code = s
        .server
        .gate
        .current_code(&her_challenge)
        .await
        .unwrap()
        .code;

    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    assert_ne!(her_code, code_for(&s, &id).await);
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &id, &her_code))
        .await;
    assert!(
        speech(&response).starts_with("That code didn't match"),
        "{response}"
    );
    // And Alice cannot reach Mallory's challenge by naming it.
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &her_challenge.id, &her_code))
        .await;
    assert!(
        speech(&response).starts_with("That code didn't match"),
        "{response}"
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
}

#[tokio::test]
async fn a_code_for_another_operation_does_not_approve() {
    let s = scene(Backend::Sqlite).await;
    let first = s
        .server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    let stop_code = code_for(&s, &challenge_id(&first)).await;

    // A second critical intent: voxgate says one is waiting and asks before replacing it.
    let mut reboot = critical(&s.server, ALICE, "RebootInstanceIntent", "web-1");
    let asked = s.server.say(reboot.clone()).await;
    assert!(
        speech(&asked).starts_with("You already have an approval waiting: Stop instance web-1"),
        "{asked}"
    );
    assert_eq!(
        asked["response"]["directives"][0]["type"],
        "Dialog.ConfirmIntent"
    );
    reboot["request"]["intent"]["confirmationStatus"] = json!("CONFIRMED");
    reboot["request"]["requestId"] = json!(fresh_request_id());
    let held = s.server.say(reboot).await;
    assert!(speech(&held).starts_with("Reboot instance web-1"), "{held}");
    let id = challenge_id(&held);
    let reboot_code = code_for(&s, &id).await;
    assert_ne!(stop_code, reboot_code);

    let response = s
        .server
        .say(say_code(&s.server, ALICE, &id, &stop_code))
        .await;
    assert!(
        speech(&response).starts_with("That code didn't match"),
        "{response}"
    );
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &id, &reboot_code))
        .await;
    assert_eq!(speech(&response), "Rebooting web-1 now.");
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(
        outcomes(&s.server).await,
        [
            "held",
            "replaced",
            "held",
            "wrong-code",
            "confirmed",
            "executed"
        ]
    );
}

#[tokio::test]
async fn keeping_the_waiting_operation_changes_nothing() {
    let s = scene(Backend::Sqlite).await;
    let first = s
        .server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    let mut start = critical(&s.server, ALICE, "RebootInstanceIntent", "build-2");
    start["request"]["intent"]["confirmationStatus"] = json!("DENIED");
    let kept = s.server.say(start).await;
    assert!(
        speech(&kept).starts_with("Okay, I kept the approval that's waiting: Stop instance web-1"),
        "{kept}"
    );
    assert_eq!(challenge_id(&kept), challenge_id(&first));
    assert_eq!(outcomes(&s.server).await, ["held"]);
}

on_both_backends!(an_expired_challenge_refuses_even_the_right_code);
async fn an_expired_challenge_refuses_even_the_right_code(backend: Backend) {
    let s = scene(backend).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    s.server
        .clock
        .advance(Duration::minutes(5) + Duration::seconds(1));
    let code = code_for(&s, &id).await;
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That approval expired, so nothing was changed. Ask again if you still want it."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(state_of(&s.ec2, &s.web1).await, "running");
    assert_eq!(outcomes(&s.server).await, ["held", "expired"]);
}

#[tokio::test]
async fn a_used_code_is_refused_and_logged_as_reuse() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    assert_eq!(
        speech(&s.server.say(say_code(&s.server, ALICE, &id, &code)).await),
        "Stopping web-1 now."
    );
    let again = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&again),
        "That code was already used, so I didn't run anything again."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 1);
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "confirmed", "executed", "reuse"]
    );
}

#[tokio::test]
async fn a_denied_challenge_is_over_for_good() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    assert!(s.server.gate.deny(&s.alice, &id).await.unwrap().is_some());
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That request was denied in your voxgate app, so nothing ran."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(outcomes(&s.server).await, ["held", "denied"]);
}

#[tokio::test]
async fn cancel_ends_the_challenge_for_good() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let mut cancel = intent_from(ALICE, "AMAZON.CancelIntent", &[], s.server.now());
    cancel["session"]["attributes"] = json!({"challengeId": id});
    let response = s.server.say(cancel).await;
    assert!(
        speech(&response).starts_with("Okay, I cancelled it: Stop instance web-1"),
        "{response}"
    );
    assert!(speech(&response).ends_with("Nothing was changed."));
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That request was cancelled, so nothing ran."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(outcomes(&s.server).await, ["held", "cancelled"]);
}

#[tokio::test]
async fn wrong_codes_lock_the_user_out_across_sessions_and_challenges() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    for tries_left in [4, 3, 2] {
        let code = code_for(&s, &id).await;
        let wrong = wrong_code(&code, 1);
        let response = s.server.say(say_code(&s.server, ALICE, &id, &wrong)).await;
        assert_eq!(
            speech(&response),
            format!("That code didn't match; you have {tries_left} tries left.")
        );
    }
    // Three wrong codes: even the right one is refused for 30 seconds, in a new session too.
    let code = code_for(&s, &id).await;
    let mut new_session = say_code(&s.server, ALICE, &id, &code);
    new_session["session"]["sessionId"] = json!("amzn1.echo-api.session.another");
    let response = s.server.say(new_session).await;
    assert!(
        speech(&response).starts_with("Too many wrong codes. Please wait 30 seconds"),
        "{response}"
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);

    // Cancelling and holding a new challenge does not reset the count: the next wrong code
    // locks for longer (60 s).
    let mut cancel = intent_from(ALICE, "AMAZON.CancelIntent", &[], s.server.now());
    cancel["session"]["attributes"] = json!({"challengeId": id});
    s.server.say(cancel).await;
    s.server.clock.advance(Duration::seconds(31));
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let wrong = wrong_code(&code, 1);
    let response = s.server.say(say_code(&s.server, ALICE, &id, &wrong)).await;
    assert!(
        speech(&response).starts_with("That code didn't match"),
        "{response}"
    );
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert!(
        speech(&response).starts_with("Too many wrong codes. Please wait 60 seconds"),
        "{response}"
    );

    // After the wait, the right code works and clears the count.
    s.server.clock.advance(Duration::seconds(61));
    let code = code_for(&s, &id).await;
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(speech(&response), "Stopping web-1 now.");
}

#[tokio::test]
async fn five_wrong_codes_cancel_the_challenge() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let mut last = Value::Null;
    // Wait out each lockout (30 s after the third wrong code, 60 s after the fourth) so
    // every try is really checked, well within the challenge's five minutes.
    for wait in [0, 0, 0, 31, 61] {
        s.server.clock.advance(Duration::seconds(wait));
        let code = code_for(&s, &id).await;
        let wrong = wrong_code(&code, 7);
        last = s.server.say(say_code(&s.server, ALICE, &id, &wrong)).await;
    }
    assert!(
        speech(&last).contains("that was the last try, so I cancelled the request"),
        "{last}"
    );
    s.server.clock.advance(Duration::minutes(10));
    // The challenge is gone for good (it expired meanwhile too, but it was cancelled first).
    let state = s
        .server
        .gate
        .challenge_of(&s.alice, &id)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, voxgate::gate::State::Cancelled);
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
}

#[tokio::test]
async fn an_unmanaged_target_is_refused_before_anything_is_held_or_called() {
    let s = scene(Backend::Sqlite).await;
    let before = s.proxy.assume_role_calls().len();
    let response = s
        .server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "db one"))
        .await;
    assert_eq!(
        speech(&response),
        "db-1 isn't managed by voxgate: it doesn't carry the tag voxgate:managed=true, so I won't change it. Nothing was changed."
    );
    assert!(response["sessionAttributes"].get("challengeId").is_none());
    assert!(
        s.server.gate.pending(&s.alice.id).await.unwrap().is_none(),
        "nothing held"
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    // Only the read-only session was asked for.
    let new_calls = &s.proxy.assume_role_calls()[before..];
    assert!(
        new_calls
            .iter()
            .all(|c| c.field("Policy").unwrap().contains("DescribeInstances"))
    );
    assert_eq!(outcomes(&s.server).await, ["refused-by-tag-guard"]);
}

#[tokio::test]
async fn a_tag_removed_after_holding_stops_the_operation() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    s.ec2
        .delete_tags()
        .resources(&s.web1)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("voxgate:managed")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let code = code_for(&s, &id).await;
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "web-1 no longer carries voxgate's tag, so I didn't run it. Nothing was changed."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed", "failed"]);
}

on_both_backends!(a_pending_challenge_survives_a_restart);
async fn a_pending_challenge_survives_a_restart(backend: Backend) {
    let s = scene(backend).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let Scene {
        proxy,
        server,
        ec2,
        web1,
        alice,
        ..
    } = s;
    let clock = server.clock.clone();
    let db = take_db(server);
    // A new process on the same database (and key file).
    let restarted =
        TestServer::start_on(&PKI, db, common::aws::sdk_config(&proxy.url), clock, |_| {}).await;
    let challenge = restarted
        .gate
        .challenge_of(&alice, &id)
        .await
        .unwrap()
        .expect("still there");
    let code = restarted.gate.current_code(&challenge).await.unwrap().code;
    let response = restarted.say(say_code(&restarted, ALICE, &id, &code)).await;
    assert_eq!(speech(&response), "Stopping web-1 now.");
    assert!(matches!(
        state_of(&ec2, &web1).await.as_str(),
        "stopping" | "stopped"
    ));
}

/// Stops a server and hands back its database.
fn take_db(server: TestServer) -> TestDb {
    server.into_db()
}

on_both_backends!(twenty_simultaneous_right_codes_run_the_operation_once);
async fn twenty_simultaneous_right_codes_run_the_operation_once(backend: Backend) {
    let s = scene(backend).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    // A second replica on the same database (on SQLite: a second process on the same file).
    let replica = TestServer::start_on(
        &PKI,
        s.server.db.share(),
        common::aws::sdk_config(&s.proxy.url),
        ManualClock::new(s.server.now()),
        |_| {},
    )
    .await;
    let requests = (0..20).map(|i| {
        let target = if i % 2 == 0 { &s.server } else { &replica };
        target.say(say_code(target, ALICE, &id, &code))
    });
    let answers: Vec<String> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(speech)
        .collect();
    assert_eq!(
        answers
            .iter()
            .filter(|a| *a == "Stopping web-1 now.")
            .count(),
        1,
        "{answers:#?}"
    );
    assert!(
        answers.iter().all(|a| a == "Stopping web-1 now."
            || a == "That code was already used, so I didn't run anything again."),
        "{answers:#?}"
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 1);
    let outcomes = outcomes(&s.server).await;
    assert_eq!(outcomes.iter().filter(|o| *o == "executed").count(), 1);
    assert_eq!(outcomes.iter().filter(|o| *o == "reuse").count(), 19);
    let records = s.server.store.audit_records(None, 0, 1000).await.unwrap();
    assert_eq!(
        s.server.gate.audit().verify(&records),
        Ok(()),
        "concurrent appends keep the chain intact"
    );
}

#[tokio::test]
async fn no_code_or_key_is_stored_in_the_clear() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    let sealed = s.server.store.totp_key(&s.alice.id).await.unwrap().unwrap();
    let ctx = voxgate::cloud::seal::SealContext::new(
        s.alice.tenant_id.as_str(),
        voxgate::cloud::seal::Purpose::TotpKey,
        s.alice.id.as_str(),
    );
    let key = s.server.sealer().open(&sealed, &ctx).await.unwrap();
    let bytes = s.server.db.all_bytes().await;
    assert!(
        !bytes.windows(key.len()).any(|w| w == key.as_slice()),
        "K_user in the clear"
    );
    let hex_key = hex::encode(key.as_slice());
    assert!(
        !bytes
            .windows(hex_key.len())
            .any(|w| w == hex_key.as_bytes())
    );
    let audit =
        serde_json::to_string(&s.server.store.audit_records(None, 0, 100).await.unwrap()).unwrap();
    assert!(!audit.contains(&code));
    let challenge = s.server.store.challenge(&id).await.unwrap().unwrap();
    assert!(!serde_json::to_string(&challenge).unwrap().contains(&code));
}

#[tokio::test]
async fn challenges_expire_and_are_audited_even_if_nobody_asks() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let mut events = s.server.gate.subscribe();
    assert!(
        s.server.gate.expire_due().await.unwrap().is_empty(),
        "not yet"
    );
    s.server.clock.advance(Duration::minutes(5));
    // What the service's sweeper runs every few seconds.
    let expired = s.server.gate.expire_due().await.unwrap();
    assert_eq!(
        expired.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let event = events.recv().await.unwrap();
    assert_eq!(
        (event.kind.as_str(), event.challenge_id.as_str()),
        ("expired", id.as_str())
    );
    assert!(s.server.gate.pending(&s.alice.id).await.unwrap().is_none());
    assert_eq!(outcomes(&s.server).await, ["held", "expired"]);
    // A new critical intent is held at once: the expired one no longer blocks it.
    let again = s
        .server
        .say(critical(&s.server, ALICE, "StopInstanceIntent", "web-1"))
        .await;
    assert!(speech(&again).starts_with("Stop instance web-1"), "{again}");
}

#[tokio::test]
async fn a_used_code_does_not_approve_the_same_operation_asked_again() {
    let s = scene(Backend::Sqlite).await;
    let held = s
        .server
        .say(critical(&s.server, ALICE, "RebootInstanceIntent", "web-1"))
        .await;
    let first = challenge_id(&held);
    let code = code_for(&s, &first).await;
    assert_eq!(
        speech(
            &s.server
                .say(say_code(&s.server, ALICE, &first, &code))
                .await
        ),
        "Rebooting web-1 now."
    );

    // Someone who overheard the code asks for the same operation at once and says it: the
    // new challenge has the same digest, hence the same codes, but that step is spent.
    let again = s
        .server
        .say(critical(&s.server, ALICE, "RebootInstanceIntent", "web-1"))
        .await;
    let second = challenge_id(&again);
    assert_ne!(first, second);
    assert_eq!(
        code_for(&s, &second).await,
        code,
        "same operation, same step, same code"
    );
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &second, &code))
        .await;
    assert_eq!(
        speech(&response),
        "That code was already used, so I didn't run anything again."
    );
    assert_eq!(count(&s.proxy, "RebootInstances"), 1);

    // The next step's code approves it.
    s.server.clock.advance(Duration::seconds(30));
    let fresh = code_for(&s, &second).await;
    assert_ne!(fresh, code);
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &second, &fresh))
        .await;
    assert_eq!(speech(&response), "Rebooting web-1 now.");
    assert_eq!(count(&s.proxy, "RebootInstances"), 2);
}

#[tokio::test]
async fn a_used_code_in_a_new_session_is_refused_and_logged() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    // A new session: no challenge id, nothing pending.
    let mut replay = say_code(&s.server, ALICE, &id, &code);
    replay["session"]["attributes"] = json!({});
    let response = s.server.say(replay).await;
    assert_eq!(
        speech(&response),
        "That code was already used, so I didn't run anything again."
    );
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "confirmed", "executed", "reuse"]
    );
}

#[tokio::test]
async fn cancel_in_a_new_session_ends_the_waiting_operation() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let response = s
        .server
        .say(intent_from(ALICE, "AMAZON.StopIntent", &[], s.server.now()))
        .await;
    assert!(
        speech(&response).starts_with("Okay, I cancelled it: Stop instance web-1"),
        "{response}"
    );
    let code = code_for(&s, &id).await;
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That request was cancelled, so nothing ran."
    );
    // With nothing waiting, "stop" just says goodbye.
    let response = s
        .server
        .say(intent_from(ALICE, "AMAZON.StopIntent", &[], s.server.now()))
        .await;
    assert_eq!(speech(&response), "Okay, nothing more to do. Goodbye.");
}

#[tokio::test]
async fn an_approval_without_an_outcome_is_closed_as_failed() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    // Approved, and then voxgate stopped before running it (simulated: approval only).
    let code = code_for(&s, &id).await;
    let verdict = s
        .server
        .gate
        .confirm(&s.alice, Some(&id), &code)
        .await
        .unwrap();
    assert!(matches!(verdict, voxgate::gate::Verdict::Approved(_)));
    s.server.clock.advance(Duration::minutes(9));
    s.server.gate.expire_due().await.unwrap();
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed"], "not yet");
    s.server.clock.advance(Duration::minutes(2));
    s.server.gate.expire_due().await.unwrap();
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed", "failed"]);
    let state = s
        .server
        .gate
        .challenge_of(&s.alice, &id)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, voxgate::gate::State::Failed);
}

on_both_backends!(guessing_in_parallel_gains_no_tries);
async fn guessing_in_parallel_gains_no_tries(backend: Backend) {
    let s = scene(backend).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let right: u32 = code.parse().unwrap();
    // Ten different wrong codes at once, half of them through a second replica.
    let replica = TestServer::start_on(
        &PKI,
        s.server.db.share(),
        common::aws::sdk_config(&s.proxy.url),
        ManualClock::new(s.server.now()),
        |_| {},
    )
    .await;
    let guesses = (1..=10u32).map(|i| {
        let target = if i % 2 == 0 { &s.server } else { &replica };
        let wrong = format!("{:06}", (right + i) % 1_000_000);
        target.say(say_code(target, ALICE, &id, &wrong))
    });
    let answers: Vec<String> = futures_util::future::join_all(guesses)
        .await
        .iter()
        .map(speech)
        .collect();
    let checked = answers
        .iter()
        .filter(|a| a.starts_with("That code didn't match"))
        .count();
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("Too many wrong codes"))
        .count();
    // Checks take turns: three wrong codes start the lockout, the other seven are refused
    // unchecked, exactly as if they had come one after another.
    assert_eq!((checked, refused), (3, 7), "{answers:#?}");
    assert_eq!(
        s.server
            .store
            .challenge(&id)
            .await
            .unwrap()
            .unwrap()
            .wrong_codes,
        3
    );
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert!(
        speech(&response).starts_with("Too many wrong codes"),
        "{response}"
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
}
