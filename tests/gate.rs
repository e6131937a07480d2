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
    // Read back as a spoken request: no instance-id fragments.
    assert_eq!(
        said,
        "I'll stop web-1 in prod, Ireland, once you say the code from your voxgate app."
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
    assert!(card.contains("Stop web-1 in prod, Ireland"), "{card}");
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
            .all(|r| r.summary == "Stop web-1 in prod, Ireland")
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
    // Only that action, on that instance, and only while it carries the managed tag (IAM
    // checks it at the moment of the call, not only voxgate before it).
    assert_eq!(
        policy["Statement"],
        json!([{
            "Effect": "Allow",
            "Action": ["ec2:RebootInstances"],
            "Resource": [format!("arn:aws:ec2:eu-west-1:{}:instance/{}", s.account, s.web1)],
            "Condition": {"StringEquals": {"aws:ResourceTag/voxgate:managed": "true"}}
        }])
    );
    assert_eq!(op_call.field("DurationSeconds").unwrap(), "900");
    let identity = op_call.field("SourceIdentity").unwrap();
    assert!(
        identity.starts_with("alice-") && identity.len() == "alice-".len() + 8,
        "{identity}"
    );
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
    // Not even a number: asked again, and it costs no try (issue 10's code conversation).
    let response = s.server.say(say_code(&s.server, ALICE, &id, "12a")).await;
    assert_eq!(
        speech(&response),
        "I didn't catch the whole code. Please say all six digits shown in your voxgate app."
    );
    let wrong = if code == "654321" { "111111" } else { "654321" };
    let response = s.server.say(say_code(&s.server, ALICE, &id, wrong)).await;
    assert_eq!(
        speech(&response),
        "That code didn't match; you have 3 tries left. One more wrong code and you'll have to \
         wait 30 seconds."
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
        speech(&asked)
            .starts_with("You already have an approval waiting: Stop web-1 in prod, Ireland"),
        "{asked}"
    );
    assert_eq!(
        asked["response"]["directives"][0]["type"],
        "Dialog.ConfirmIntent"
    );
    // "yes" without what the question was about (a crafted or stale session) replaces
    // nothing: the question is asked again.
    reboot["request"]["intent"]["confirmationStatus"] = json!("CONFIRMED");
    reboot["request"]["requestId"] = json!(fresh_request_id());
    let again = s.server.say(reboot.clone()).await;
    assert!(
        speech(&again).starts_with("You already have an approval waiting"),
        "{again}"
    );
    // As Alexa does, the session carries the question's attributes to the "yes".
    reboot["session"]["attributes"] = asked["sessionAttributes"].clone();
    reboot["request"]["requestId"] = json!(fresh_request_id());
    let held = s.server.say(reboot).await;
    assert!(
        speech(&held).starts_with("I'll reboot web-1 in prod"),
        "{held}"
    );
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
        speech(&kept)
            .starts_with("Okay, I kept the approval that's waiting: Stop web-1 in prod, Ireland"),
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
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "expired", "code-after-expiry"]
    );
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
    assert!(matches!(
        s.server
            .gate
            .deny(
                &s.alice,
                &id,
                &voxgate::audit::Actor::Device("d_test".into())
            )
            .await
            .unwrap(),
        voxgate::gate::Closing::Closed(_)
    ));
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That request was denied in your voxgate app, so nothing ran."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "denied", "code-after-deny"]
    );
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
        speech(&response).starts_with("Okay, I cancelled it: Stop web-1 in prod, Ireland"),
        "{response}"
    );
    assert!(speech(&response).ends_with("Nothing was changed."));
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That request was cancelled, so nothing ran."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "cancelled", "code-after-cancel"]
    );
}

#[tokio::test]
async fn wrong_codes_lock_the_user_out_across_sessions_and_challenges() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    // The warning comes before the lockout, and the lockout is said when it starts.
    for said in [
        "That code didn't match; you have 4 tries left.",
        "That code didn't match; you have 3 tries left. One more wrong code and you'll have to \
         wait 30 seconds.",
        "That code didn't match, and that's too many wrong codes in a row: wait 30 seconds \
         before the next one. You have 2 tries left.",
    ] {
        let code = code_for(&s, &id).await;
        let wrong = wrong_code(&code, 1);
        let response = s.server.say(say_code(&s.server, ALICE, &id, &wrong)).await;
        assert_eq!(speech(&response), said);
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
        speech(&response).starts_with("Too many wrong codes. Please wait 1 minute,"),
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
    assert_eq!(state, voxgate::gate::State::TooManyWrongCodes);
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    // Even its right code now only hears why.
    let code = code_for(&s, &id).await;
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "That request was cancelled after too many wrong codes, so nothing ran. Ask again if \
         you still want it."
    );
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

/// A second replica on the scene's database, where the backend has replicas (PostgreSQL).
async fn second_replica(s: &Scene, backend: Backend) -> Option<TestServer> {
    if backend != Backend::Postgres {
        return None;
    }
    Some(
        TestServer::start_on(
            &PKI,
            s.server.db.share(),
            common::aws::sdk_config(&s.proxy.url),
            ManualClock::new(s.server.now()),
            |_| {},
        )
        .await,
    )
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
    // On PostgreSQL, a second replica on the same database takes half of them. (SQLite is
    // served by one process, which takes them all at once.)
    let replica = second_replica(&s, backend).await;
    let requests = (0..20).map(|i| {
        let target = match &replica {
            Some(replica) if i % 2 == 1 => replica,
            _ => &s.server,
        };
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
    assert!(
        speech(&again).starts_with("I'll stop web-1 in prod, Ireland"),
        "{again}"
    );
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
    // new challenge has its own codes, so the overheard one is just wrong.
    let again = s
        .server
        .say(critical(&s.server, ALICE, "RebootInstanceIntent", "web-1"))
        .await;
    let second = challenge_id(&again);
    assert_ne!(first, second);
    let fresh = code_for(&s, &second).await;
    assert_ne!(
        fresh, code,
        "a new challenge, a new code, in the same time step"
    );
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &second, &code))
        .await;
    assert_eq!(
        speech(&response),
        "That code didn't match; you have 4 tries left."
    );
    assert_eq!(count(&s.proxy, "RebootInstances"), 1);

    // Its own code approves it at once, in the same step.
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
    // "stop" ends the conversation, not the held operation.
    let response = s
        .server
        .say(intent_from(ALICE, "AMAZON.StopIntent", &[], s.server.now()))
        .await;
    assert_eq!(
        speech(&response),
        "Okay. This is still waiting for its code: Stop web-1 in prod, Ireland. Say cancel to \
         drop it. Goodbye."
    );
    assert!(!s.nothing_held().await);
    let response = s
        .server
        .say(intent_from(
            ALICE,
            "AMAZON.CancelIntent",
            &[],
            s.server.now(),
        ))
        .await;
    assert!(
        speech(&response).starts_with("Okay, I cancelled it: Stop web-1 in prod, Ireland"),
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
async fn an_approval_without_an_outcome_is_closed_as_unknown() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    // Approved, and then voxgate stopped before recording what happened (simulated:
    // approval only).
    let code = code_for(&s, &id).await;
    let verdict = s
        .server
        .gate
        .confirm(
            &s.alice,
            Some(&id),
            &code,
            &voxgate::audit::Actor::AlexaSession("s".into()),
        )
        .await
        .unwrap();
    let voxgate::gate::Verdict::Approved(approved) = verdict else {
        panic!("{verdict:?}")
    };
    s.server.clock.advance(Duration::seconds(90));
    s.server.gate.expire_due().await.unwrap();
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed"], "not yet");
    let mut events = s.server.gate.subscribe();
    s.server.clock.advance(Duration::seconds(31));
    s.server.gate.expire_due().await.unwrap();
    // Whether it ran cannot be known: it is said to be unknown, not failed, and not retried.
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "confirmed", "outcome-unknown"]
    );
    let records = s.server.store.audit_of_challenge(&id).await.unwrap();
    assert!(
        records[2].detail.contains("check the resource"),
        "{records:?}"
    );
    assert_eq!(records[2].actor.as_deref(), Some("voxgate"));
    let event = events.recv().await.unwrap();
    assert_eq!(event.kind, "outcome-unknown");
    let state = s
        .server
        .gate
        .challenge_of(&s.alice, &id)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, voxgate::gate::State::OutcomeUnknown);
    assert_eq!(count(&s.proxy, "StopInstances"), 0, "never retried");

    // If the operation's result arrives after all, it is not written over the first outcome.
    let finish = s
        .server
        .gate
        .finish(
            &approved,
            voxgate::gate::Execution::Executed(Some("req-late".into())),
            &voxgate::audit::Actor::AlexaSession("s".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        finish,
        voxgate::gate::Finish::AlreadyClosed(voxgate::gate::State::OutcomeUnknown)
    );
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "confirmed", "outcome-unknown"],
        "no second, contradicting outcome"
    );
}

on_both_backends!(guessing_in_parallel_gains_no_tries);
async fn guessing_in_parallel_gains_no_tries(backend: Backend) {
    let s = scene(backend).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let right: u32 = code.parse().unwrap();
    // Ten different wrong codes at once (on PostgreSQL half of them through a second
    // replica).
    let replica = second_replica(&s, backend).await;
    let guesses = (1..=10u32).map(|i| {
        let target = match &replica {
            Some(replica) if i % 2 == 1 => replica,
            _ => &s.server,
        };
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

// ---- Hardening (issue 8) ----

/// Alice ends her held `challenge` the way `how` says.
async fn end(s: &Scene, id: &str, how: &str) {
    match how {
        "deny" => {
            let closing = s
                .server
                .gate
                .deny(&s.alice, id, &voxgate::audit::Actor::Device("d_x".into()))
                .await
                .unwrap();
            assert!(matches!(closing, voxgate::gate::Closing::Closed(_)));
        }
        "cancel" => {
            let mut cancel = intent_from(ALICE, "AMAZON.CancelIntent", &[], s.server.now());
            cancel["session"]["attributes"] = json!({"challengeId": id});
            let response = s.server.say(cancel).await;
            assert!(
                speech(&response).starts_with("Okay, I cancelled it"),
                "{response}"
            );
        }
        "expire" => {
            // The shortest time to live is 30 s: one step later the old code is still
            // within the ±1 step every code is accepted for.
            s.server.clock.advance(Duration::seconds(30));
            assert_eq!(s.server.gate.expire_due().await.unwrap().len(), 1);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_code_shown_for_an_ended_challenge_never_approves_the_same_operation_held_again() {
    for how in ["deny", "cancel", "expire"] {
        let proxy = common::aws::RecordingProxy::start(&common::aws::MOTO).await;
        let server = TestServer::start_full(&PKI, Backend::Sqlite, &proxy.url, |args| {
            args.challenge_ttl = 30;
        })
        .await;
        let account = fresh_account_id();
        let ec2 = ec2_in(&account, "eu-west-1").await;
        let web1 = seed_instance(&ec2, "web-1", MANAGED, true).await;
        let acme = server.tenant("acme").await;
        let alice = server.enrol(&acme, "alice", ALICE).await;
        server.link(&acme, "prod", &account, "eu-west-1").await;
        let s = Scene {
            proxy,
            server,
            ec2,
            web1,
            alice,
            account,
        };

        let (_, first) = s.hold("StopInstanceIntent", "web-1").await;
        let shown = code_for(&s, &first).await;
        end(&s, &first, how).await;
        // The same operation, held again at once: the code the app showed for the ended
        // one must not approve it.
        let (_, second) = s.hold("StopInstanceIntent", "web-1").await;
        assert_ne!(first, second);
        let response = s
            .server
            .say(say_code(&s.server, ALICE, &second, &shown))
            .await;
        assert_eq!(
            speech(&response),
            "That code didn't match; you have 4 tries left.",
            "after {how}"
        );
        assert_eq!(count(&s.proxy, "StopInstances"), 0, "after {how}");
        assert_eq!(state_of(&s.ec2, &s.web1).await, "running");
    }
}

#[tokio::test]
async fn stop_start_and_stop_again_within_a_minute_each_approved_with_its_own_code() {
    let s = scene(Backend::Sqlite).await;
    for (intent, said) in [
        ("StopInstanceIntent", "Stopping web-1 now."),
        ("StartInstanceIntent", "Starting web-1 now."),
        ("StopInstanceIntent", "Stopping web-1 now."),
    ] {
        let (_, id) = s.hold(intent, "web-1").await;
        let code = code_for(&s, &id).await;
        let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
        assert_eq!(speech(&response), said, "{intent}");
        // moto moves states at once; the clock does not move at all: one time step.
    }
    assert_eq!(count(&s.proxy, "StopInstances"), 2);
    assert_eq!(count(&s.proxy, "StartInstances"), 1);
    assert_eq!(
        outcomes(&s.server).await,
        [
            "held",
            "confirmed",
            "executed",
            "held",
            "confirmed",
            "executed",
            "held",
            "confirmed",
            "executed"
        ]
    );
}

#[tokio::test]
async fn a_code_for_a_replaced_or_already_approved_request_says_so() {
    let s = scene(Backend::Sqlite).await;
    let (_, first) = s.hold("StopInstanceIntent", "web-1").await;
    let first_code = code_for(&s, &first).await;
    let mut reboot = critical(&s.server, ALICE, "RebootInstanceIntent", "web-1");
    let asked = s.server.say(reboot.clone()).await;
    reboot["session"]["attributes"] = asked["sessionAttributes"].clone();
    reboot["request"]["intent"]["confirmationStatus"] = json!("CONFIRMED");
    reboot["request"]["requestId"] = json!(fresh_request_id());
    let second = challenge_id(&s.server.say(reboot).await);
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &first, &first_code))
        .await;
    assert_eq!(
        speech(&response),
        "That request was replaced by a newer one, so nothing ran. Say the code for the new \
         one instead."
    );
    let code = code_for(&s, &second).await;
    assert_eq!(
        speech(
            &s.server
                .say(say_code(&s.server, ALICE, &second, &code))
                .await
        ),
        "Rebooting web-1 now."
    );
    // A wrong code for it now: it was approved, so nothing changes, and that is what is said.
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &second, &wrong_code(&code, 3)))
        .await;
    assert_eq!(
        speech(&response),
        "That request was already approved, so I didn't run anything again."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(count(&s.proxy, "RebootInstances"), 1);
    assert_eq!(
        outcomes(&s.server).await,
        [
            "held",
            "replaced",
            "held",
            "code-after-replace",
            "confirmed",
            "executed",
            "code-after-approval"
        ]
    );
}

#[tokio::test]
async fn every_audit_record_names_its_challenge_and_who_acted() {
    let s = scene(Backend::Sqlite).await;
    let (held, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let wrong = s
        .server
        .say(say_code(&s.server, ALICE, &id, &wrong_code(&code, 1)))
        .await;
    assert!(speech(&wrong).starts_with("That code didn't match"));
    s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    let story = s.server.store.audit_of_challenge(&id).await.unwrap();
    assert_eq!(
        story.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(),
        ["held", "wrong-code", "confirmed", "executed"],
        "one challenge's story, read from the log"
    );
    let session = fixture("dialog-started")["session"]["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(held["sessionAttributes"]["challengeId"].is_string());
    for record in &story {
        assert_eq!(record.challenge_id.as_deref(), Some(id.as_str()));
        assert_eq!(
            record.actor.as_deref(),
            Some(format!("alexa-session:{session}").as_str())
        );
        assert_eq!(record.format, 3);
    }
    let records = s.server.store.audit_records(None, 0, 100).await.unwrap();
    assert_eq!(s.server.gate.audit().verify(&records), Ok(()));
}

#[tokio::test]
async fn a_decision_that_cannot_be_recorded_is_not_taken() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    // The audit log stops accepting records (a full disk, a revoked grant, …).
    let pool = sqlx::SqlitePool::connect(&s.server.db.url).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let failures_before = voxgate::audit::write_failures();

    // The right code: not approved, nothing runs, and the person hears why.
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "I couldn't record that in the audit log, so I didn't do it. Nothing was changed. \
         Please tell your voxgate operator."
    );
    // A wrong code is refused, but not counted (counting is a decision too).
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &id, &wrong_code(&code, 1)))
        .await;
    assert!(
        speech(&response).starts_with("I couldn't record that"),
        "{response}"
    );
    // Cancel by voice, and deny, change nothing either.
    let mut cancel = intent_from(ALICE, "AMAZON.CancelIntent", &[], s.server.now());
    cancel["session"]["attributes"] = json!({"challengeId": id});
    let response = s.server.say(cancel).await;
    assert!(
        speech(&response).starts_with("I couldn't record that"),
        "{response}"
    );
    assert!(matches!(
        s.server
            .gate
            .deny(&s.alice, &id, &voxgate::audit::Actor::Device("d".into()))
            .await,
        Err(voxgate::gate::GateError::Unrecorded)
    ));
    // Nor does expiry.
    s.server.clock.advance(Duration::minutes(6));
    assert!(s.server.gate.expire_due().await.unwrap().is_empty());
    let row = s.server.store.challenge(&id).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.wrong_codes), ("pending", 0));
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert!(voxgate::audit::write_failures() >= failures_before + 4);

    // Once records can be written again, the sweeper catches up: expired, on record.
    sqlx::query("DROP TRIGGER refuse_audit")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(s.server.gate.expire_due().await.unwrap().len(), 1);
    assert_eq!(outcomes(&s.server).await, ["held", "expired"]);
    pool.close().await;
}

on_both_backends!(the_sweeper_closes_an_unreadable_challenge_and_expires_the_others);
async fn the_sweeper_closes_an_unreadable_challenge_and_expires_the_others(backend: Backend) {
    let s = scene(backend).await;
    let acme = s
        .server
        .store
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap();
    let bob = "amzn1.ask.account.BOB";
    s.server.enrol(&acme, "bob", bob).await;
    let (_, alices) = s.hold("StopInstanceIntent", "web-1").await;
    let bobs = challenge_id(
        &s.server
            .say(critical(&s.server, bob, "RebootInstanceIntent", "build-2"))
            .await,
    );
    // Alice's row is altered in the database (or was written by another version).
    let pool = sqlx::AnyPool::connect(&s.server.db.url).await.unwrap();
    sqlx::query("UPDATE challenges SET operation = $1 WHERE id = $2")
        .bind(r#"{"format":7,"kind":"ec2-instance","operation":{}}"#)
        .bind(&alices)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut events = s.server.gate.subscribe();
    s.server.clock.advance(Duration::minutes(6));
    let expired = s.server.gate.expire_due().await.unwrap();
    assert_eq!(
        expired.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [bobs.as_str()],
        "one unreadable row does not stop the others"
    );
    let alice_story = s.server.store.audit_of_challenge(&alices).await.unwrap();
    assert_eq!(
        alice_story
            .iter()
            .map(|r| r.outcome.as_str())
            .collect::<Vec<_>>(),
        ["held", "unreadable"]
    );
    assert!(alice_story[1].detail.contains("nothing ran"));
    let bob_story = s.server.store.audit_of_challenge(&bobs).await.unwrap();
    assert_eq!(
        bob_story
            .iter()
            .map(|r| r.outcome.as_str())
            .collect::<Vec<_>>(),
        ["held", "expired"]
    );
    let mut kinds = vec![
        events.recv().await.unwrap().kind,
        events.recv().await.unwrap().kind,
    ];
    kinds.sort();
    assert_eq!(kinds, ["expired", "unreadable"]);
    // Alice is not stuck: her next operation is held as usual.
    let (held, _) = s.hold("StopInstanceIntent", "web-1").await;
    assert!(
        speech(&held).starts_with("I'll stop web-1 in prod, Ireland"),
        "{held}"
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
}

#[tokio::test]
async fn an_unreadable_challenge_named_by_the_session_is_closed_and_said() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let pool = sqlx::AnyPool::connect(&s.server.db.url).await.unwrap();
    // The digest no longer fits the operation: what would run is not what the code is for.
    sqlx::query("UPDATE challenges SET digest = $1 WHERE id = $2")
        .bind("0".repeat(64))
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let response = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&response),
        "I couldn't read that request back, so I won't run it. Please ask again."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
    assert_eq!(outcomes(&s.server).await, ["held", "unreadable"]);
}

#[tokio::test]
async fn an_unreadable_approval_ends_as_unknown_and_a_newer_versions_row_is_left_to_it() {
    let s = scene(Backend::Sqlite).await;
    let pool = sqlx::AnyPool::connect(&s.server.db.url).await.unwrap();
    // Approved (by a replica that then stopped) and altered: it may have run.
    let (_, approved) = s.hold("StopInstanceIntent", "web-1").await;
    sqlx::query(
        "UPDATE challenges SET state = 'approved', closed_at = $1, operation = $2 WHERE id = $3",
    )
    .bind(s.server.now().unix_timestamp())
    .bind(r#"{"format":1,"kind":"ec2-instance","operation":{}}"#)
    .bind(&approved)
    .execute(&pool)
    .await
    .unwrap();
    s.server.clock.advance(Duration::minutes(3));
    s.server.gate.expire_due().await.unwrap();
    let row = s.server.store.challenge(&approved).await.unwrap().unwrap();
    assert_eq!(row.state, "outcome-unknown");
    assert_eq!(outcomes(&s.server).await, ["held", "outcome-unknown"]);

    // A pending row of a kind only a newer voxgate knows (a rolling upgrade) is not closed
    // by this one while it waits...
    let (_, newer) = s.hold("StopInstanceIntent", "web-1").await;
    sqlx::query("UPDATE challenges SET operation = $1 WHERE id = $2")
        .bind(r#"{"format":1,"kind":"budget","operation":{"amount":500}}"#)
        .bind(&newer)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let said = s
        .server
        .say(say_code(&s.server, ALICE, &newer, "123456"))
        .await;
    assert_eq!(
        speech(&said),
        "I couldn't read that request back, so I won't run it. Please ask again."
    );
    let row = s.server.store.challenge(&newer).await.unwrap().unwrap();
    assert_eq!(row.state, "pending");
    // ...and closed once it is due.
    s.server.clock.advance(Duration::minutes(6));
    s.server.gate.expire_due().await.unwrap();
    let row = s.server.store.challenge(&newer).await.unwrap().unwrap();
    assert_eq!(row.state, "unreadable");
    assert_eq!(count(&s.proxy, "StopInstances"), 0);
}

#[tokio::test]
async fn a_change_answered_with_a_server_error_is_reported_as_unknown() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    // EC2 stops the instance, then answers 500: the change may well have happened.
    s.proxy.fail_after_forwarding("StopInstances");
    let answer = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&answer),
        "I asked AWS, but got no clear answer, so I can't tell whether web-1 was \
         stopped. Please check web-1 before asking again; I won't retry it."
    );
    assert_ne!(state_of(&s.ec2, &s.web1).await, "running");
    assert_eq!(count(&s.proxy, "StopInstances"), 1, "never retried");
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "confirmed", "outcome-unknown"]
    );
}

#[tokio::test]
async fn a_change_without_an_answer_is_reported_as_unknown_and_never_retried() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    let mut events = s.server.gate.subscribe();
    // EC2 receives the change but never answers.
    s.proxy.hang_on("StopInstances");
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        s.server.say(say_code(&s.server, ALICE, &id, &code)),
    )
    .await
    .expect("an answer within the 8 s Alexa waits");
    assert_eq!(
        speech(&answer),
        "I asked AWS, but got no clear answer, so I can't tell whether web-1 was \
         stopped. Please check web-1 before asking again; I won't retry it."
    );
    assert_eq!(
        count(&s.proxy, "StopInstances"),
        1,
        "sent once, never retried"
    );
    assert_eq!(
        outcomes(&s.server).await,
        ["held", "confirmed", "outcome-unknown"]
    );
    let row = s.server.store.challenge(&id).await.unwrap().unwrap();
    assert_eq!(row.state, "outcome-unknown");
    loop {
        let event = events.recv().await.unwrap();
        if event.kind != "confirmed" {
            assert_eq!(event.kind, "outcome-unknown");
            break;
        }
    }
    // The code spoken again runs nothing.
    let again = s.server.say(say_code(&s.server, ALICE, &id, &code)).await;
    assert_eq!(
        speech(&again),
        "That code was already used, so I didn't run anything again."
    );
    assert_eq!(count(&s.proxy, "StopInstances"), 1);
}

#[tokio::test]
async fn a_hanging_aws_gets_a_spoken_answer_within_alexas_eight_seconds() {
    let s = scene(Backend::Sqlite).await;
    s.proxy.hang_on("*");
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        s.server.say(intent_from(
            ALICE,
            "ListInstancesIntent",
            &[],
            s.server.now(),
        )),
    )
    .await
    .expect("an answer within the 8 s Alexa waits");
    assert_eq!(
        speech(&answer),
        "I couldn't reach AWS just now. Nothing was changed. Please try again."
    );
}

#[tokio::test]
async fn a_partial_or_unheard_code_is_asked_again_without_costing_a_try() {
    let s = scene(Backend::Sqlite).await;
    let (held, id) = s.hold("StopInstanceIntent", "web-1").await;
    for heard in ["?", "135", "12", "one"] {
        let response = s.server.say(say_code(&s.server, ALICE, &id, heard)).await;
        assert_eq!(
            speech(&response),
            "I didn't catch the whole code. Please say all six digits shown in your voxgate app."
        );
        assert_eq!(
            response["response"]["directives"][0]["slotToElicit"],
            "code"
        );
        assert_eq!(response["sessionAttributes"]["challengeId"], id.as_str());
    }
    // No try was spent: a wrong whole code still leaves four of five.
    let code = code_for(&s, &id).await;
    let response = s
        .server
        .say(say_code(&s.server, ALICE, &id, &wrong_code(&code, 1)))
        .await;
    assert_eq!(
        speech(&response),
        "That code didn't match; you have 4 tries left."
    );
    assert_eq!(outcomes(&s.server).await, ["held", "wrong-code"]);
    let _ = held;
}

#[tokio::test]
async fn what_is_waiting_and_repeat_read_the_held_operation_again() {
    let s = scene(Backend::Sqlite).await;
    let nothing = s.ask("WhatIsWaitingIntent", &[]).await;
    assert_eq!(
        speech(&nothing),
        "Nothing is waiting for your approval. What would you like to do?"
    );
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    for intent in ["WhatIsWaitingIntent", "AMAZON.RepeatIntent"] {
        let again = s.ask(intent, &[]).await;
        assert_eq!(
            speech(&again),
            "I'll stop web-1 in prod, Ireland, once you say the code from your voxgate app."
        );
        assert_eq!(challenge_id(&again), id);
        assert_eq!(again["response"]["directives"][0]["slotToElicit"], "code");
    }
    let done = s.approve(&s.ask("WhatIsWaitingIntent", &[]).await).await;
    assert_eq!(speech(&done), "Stopping web-1 now.");
}

/// A graceful stop (SIGTERM) while an approved operation is running: the operation
/// finishes, is recorded, and the person hears it ran.
#[tokio::test]
async fn a_graceful_stop_lets_the_running_operation_finish() {
    let s = scene(Backend::Sqlite).await;
    let (_, id) = s.hold("StopInstanceIntent", "web-1").await;
    let code = code_for(&s, &id).await;
    s.proxy
        .delay_on("StopInstances", std::time::Duration::from_millis(1500));
    let (answer, ()) = tokio::join!(
        s.server.say(say_code(&s.server, ALICE, &id, &code)),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            s.server.begin_shutdown();
        }
    );
    assert_eq!(speech(&answer), "Stopping web-1 now.");
    assert_eq!(count(&s.proxy, "StopInstances"), 1);
    assert_eq!(outcomes(&s.server).await, ["held", "confirmed", "executed"]);
}
