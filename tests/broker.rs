//! Read-only EC2 by voice through the credential broker, against moto and both store
//! backends: tenant isolation across accounts, the exact AssumeRole parameters, the
//! credential cache, sealing with KMS, and the spoken answers to failures.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::aws::{MOTO, RecordingProxy, ec2_in, fresh_account_id, sdk_config, seed_instance};
use common::*;
use serde_json::{Value, json};
use time::Duration;
use voxgate::cloud::seal::{Purpose, SealContext, SealError, Sealer};

const ALICE: &str = "amzn1.ask.account.ALICE";
const BOB: &str = "amzn1.ask.account.BOB";

on_both_backends!(whats_running_for_two_tenants_in_two_accounts);
async fn whats_running_for_two_tenants_in_two_accounts(backend: Backend) {
    let proxy = RecordingProxy::start(&MOTO).await;
    let server = TestServer::start_full(&PKI, backend, &proxy.url, |_| {}).await;
    let (account_a, account_b) = (fresh_account_id(), fresh_account_id());
    let ec2_a = ec2_in(&account_a, "eu-west-1").await;
    seed_instance(&ec2_a, "web-1", &[], true).await;
    seed_instance(&ec2_a, "db-1", &[], false).await;
    let ec2_b = ec2_in(&account_b, "eu-west-1").await;
    seed_instance(&ec2_b, "build-2", &[], true).await;

    let acme = server.tenant("acme").await;
    let alice = server.enrol(&acme, "alice", ALICE).await;
    let linked_a = server.link(&acme, "prod", &account_a, "eu-west-1").await;
    let globex = server.tenant("globex").await;
    let bob = server.enrol(&globex, "bob", BOB).await;
    let linked_b = server.link(&globex, "main", &account_b, "eu-west-1").await;

    let alice_hears = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert_eq!(
        speech(&alice_hears),
        "In Ireland, 1 instance is running: web-1. 1 is stopped: db-1."
    );
    let card = alice_hears["response"]["card"]["content"].as_str().unwrap();
    assert!(
        card.contains("web-1") && card.contains("running") && !card.contains("build-2"),
        "{card}"
    );
    assert_eq!(alice_hears["response"]["shouldEndSession"], true);

    let bob_hears = server
        .say(intent_from(BOB, "ListInstancesIntent", &[], server.now()))
        .await;
    assert_eq!(
        speech(&bob_hears),
        "In Ireland, 1 instance is running: build-2."
    );

    // What voxgate sent to STS, exactly.
    let calls = proxy.assume_role_calls();
    assert_eq!(calls.len(), 2, "one AssumeRole per user and account");
    for (call, account, linked, user) in [
        (&calls[0], &account_a, &linked_a, &alice),
        (&calls[1], &account_b, &linked_b, &bob),
    ] {
        assert_eq!(
            call.field("RoleArn").unwrap(),
            format!("arn:aws:iam::{account}:role/voxgate-access")
        );
        assert_eq!(
            call.field("ExternalId").unwrap(),
            linked.external_id.expose()
        );
        // The person's name and a short stable suffix of their id: CloudTrail never shows
        // two people (say, two Alices in two tenants) as one.
        let suffix = &hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            user.id.as_str().as_bytes(),
        ))[..8];
        assert_eq!(
            call.field("RoleSessionName").unwrap(),
            format!("voxgate-{}-{suffix}", user.name)
        );
        assert_eq!(
            call.field("SourceIdentity").unwrap(),
            format!("{}-{suffix}", user.name)
        );
        assert_eq!(call.field("DurationSeconds").unwrap(), "900");
        let policy: Value = serde_json::from_str(&call.field("Policy").unwrap()).unwrap();
        assert_eq!(
            policy,
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": ["*"]}
            ]})
        );
    }
}

/// Alice of acme, with "prod" linked to a fresh moto account running web-1, on a server
/// whose clock is `ahead` of the real one; the proxy records what reached STS.
async fn alice_with_web_1(backend: Backend, ahead: Duration) -> (RecordingProxy, TestServer) {
    let proxy = RecordingProxy::start(&MOTO).await;
    let clock = voxgate::clock::ManualClock::new(time::OffsetDateTime::now_utc() + ahead);
    let server = TestServer::start_on(
        &PKI,
        TestDb::new(backend).await,
        sdk_config(&proxy.url),
        clock,
        |_| {},
    )
    .await;
    let account = fresh_account_id();
    seed_instance(&ec2_in(&account, "eu-west-1").await, "web-1", &[], true).await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    server.link(&acme, "prod", &account, "eu-west-1").await;
    (proxy, server)
}

/// Twelve concurrent reads make one STS call; sessions last 15 minutes and are replaced
/// when 5 or fewer remain, by voxgate's own clock however far `ahead` of AWS's it is.
async fn one_sts_call_then_a_refresh_near_expiry(backend: Backend, ahead: Duration) {
    let (proxy, server) = alice_with_web_1(backend, ahead).await;
    let list = || server.say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()));
    for response in futures_util::future::join_all((0..12).map(|_| list())).await {
        assert_eq!(
            speech(&response),
            "In Ireland, 1 instance is running: web-1."
        );
    }
    assert_eq!(
        proxy.assume_role_calls().len(),
        1,
        "12 concurrent requests, one STS call"
    );
    server.clock.advance(Duration::minutes(9));
    list().await;
    assert_eq!(
        proxy.assume_role_calls().len(),
        1,
        "still fresh after 9 minutes"
    );
    server.clock.advance(Duration::minutes(2));
    let response = list().await;
    assert_eq!(
        speech(&response),
        "In Ireland, 1 instance is running: web-1."
    );
    assert_eq!(
        proxy.assume_role_calls().len(),
        2,
        "refreshed with 4 of its 15 minutes left"
    );
}

on_both_backends!(one_sts_call_for_many_requests_and_a_refresh_near_expiry);
async fn one_sts_call_for_many_requests_and_a_refresh_near_expiry(backend: Backend) {
    one_sts_call_then_a_refresh_near_expiry(backend, Duration::ZERO).await;
}

/// voxgate's clock 20 minutes ahead of AWS's: STS states an expiry that looks 5 minutes
/// past to voxgate. The session is still kept by voxgate's own clock (12 STS calls for 12
/// requests when it trusted the stated expiry).
#[tokio::test]
async fn a_clock_ahead_of_aws_still_shares_one_sts_call() {
    one_sts_call_then_a_refresh_near_expiry(Backend::Sqlite, Duration::minutes(20)).await;
}

/// voxgate's clock 20 minutes fast, then set right by NTP after a session was taken: by
/// the wall clock the session looks 20 minutes younger than it is, but it is still
/// refreshed when its real 15 minutes are nearly over (AWS would refuse it after them).
#[tokio::test]
async fn a_clock_set_back_does_not_keep_expired_credentials() {
    let (proxy, server) = alice_with_web_1(Backend::Sqlite, Duration::minutes(20)).await;
    let list = || server.say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()));
    list().await;
    assert_eq!(proxy.assume_role_calls().len(), 1);
    server.clock.advance(Duration::minutes(-20));
    server.clock.advance(Duration::minutes(9));
    list().await;
    assert_eq!(
        proxy.assume_role_calls().len(),
        1,
        "still fresh after 9 minutes"
    );
    server.clock.advance(Duration::minutes(2));
    let response = list().await;
    assert_eq!(
        speech(&response),
        "In Ireland, 1 instance is running: web-1."
    );
    assert_eq!(
        proxy.assume_role_calls().len(),
        2,
        "refreshed 11 minutes after it was taken, though the wall clock says 31 are left"
    );
}

/// The session cache is bounded (`--cached-sessions`): beyond it the sessions that expire
/// first are dropped, the newest are still answered without STS, and expired ones leave.
#[tokio::test]
async fn the_session_cache_keeps_at_most_its_size() {
    let proxy = RecordingProxy::start(&MOTO).await;
    let server = TestServer::start_full(&PKI, Backend::Sqlite, &proxy.url, |args| {
        args.cached_sessions = 100;
    })
    .await;
    let account = fresh_account_id();
    let acme = server.tenant("acme").await;
    let linked = server.link(&acme, "prod", &account, "eu-west-1").await;
    let policy = voxgate::cloud::policy::SessionPolicy::allow(&["ec2:DescribeInstances"], &["*"]);
    let mut users = Vec::new();
    for i in 0..120 {
        users.push(
            server
                .enrol(
                    &acme,
                    &format!("user{i}"),
                    &format!("amzn1.ask.account.U{i}"),
                )
                .await,
        );
    }
    for user in &users {
        server
            .broker
            .session(&linked.account, user, &policy)
            .await
            .unwrap();
        assert!(
            server.broker.cached_sessions() <= 100,
            "{} sessions cached",
            server.broker.cached_sessions()
        );
        server.clock.advance(Duration::seconds(1));
    }
    assert_eq!(server.broker.sts_calls(), 120);
    for user in &users[70..] {
        server
            .broker
            .session(&linked.account, user, &policy)
            .await
            .unwrap();
    }
    assert_eq!(
        server.broker.sts_calls(),
        120,
        "the 50 newest sessions were kept"
    );
    server
        .broker
        .session(&linked.account, &users[0], &policy)
        .await
        .unwrap();
    assert_eq!(server.broker.sts_calls(), 121, "the oldest was dropped");
    // Once they have expired, the next new session's call drops them all.
    server.clock.advance(Duration::minutes(16));
    server
        .broker
        .session(&linked.account, &users[1], &policy)
        .await
        .unwrap();
    assert_eq!(server.broker.cached_sessions(), 1);
}

#[tokio::test]
async fn instance_status_by_spoken_name() {
    let server = TestServer::start_full(&PKI, Backend::Sqlite, &MOTO, |_| {}).await;
    let account = fresh_account_id();
    let ec2 = ec2_in(&account, "eu-west-1").await;
    for (name, running) in [
        ("web-1", true),
        ("web-2", true),
        ("build-2", true),
        ("db", false),
    ] {
        seed_instance(&ec2, name, &[], running).await;
    }
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    server.link(&acme, "prod", &account, "eu-west-1").await;
    let ask =
        |slots: &[(&str, &str)]| intent_from(ALICE, "InstanceStatusIntent", slots, server.now());

    let response = server.say(ask(&[("instance", "build two")])).await;
    assert_eq!(speech(&response), "build-2 is running.");
    let response = server.say(ask(&[("instance", "the DB")])).await;
    assert_eq!(speech(&response), "db is stopped.");

    let response = server.say(ask(&[("instance", "web")])).await;
    assert_eq!(
        speech(&response),
        "More than one instance matches web: web-1 or web-2. Which one do you mean?"
    );
    assert_eq!(response["response"]["shouldEndSession"], false);
    assert_eq!(
        response["response"]["directives"][0]["type"],
        "Dialog.ElicitSlot"
    );
    assert_eq!(
        response["response"]["directives"][0]["slotToElicit"],
        "instance"
    );

    let response = server.say(ask(&[("instance", "cache")])).await;
    assert_eq!(
        speech(&response),
        "I couldn't find an instance called cache. You have build-2, db, web-1 and web-2."
    );

    let response = server.say(ask(&[])).await;
    assert_eq!(speech(&response), "Which instance? Say its name.");
    assert_eq!(
        response["response"]["directives"][0]["slotToElicit"],
        "instance"
    );
}

#[tokio::test]
async fn a_named_region_is_used_instead_of_the_default() {
    let server = TestServer::start_full(&PKI, Backend::Sqlite, &MOTO, |_| {}).await;
    let account = fresh_account_id();
    seed_instance(&ec2_in(&account, "eu-west-1").await, "web-1", &[], true).await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    server.link(&acme, "prod", &account, "us-east-1").await;

    let response = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert_eq!(
        speech(&response),
        "In North Virginia, you have no instances."
    );

    // "in Ireland", resolved by the interaction model to eu-west-1.
    let mut body = intent_from(ALICE, "ListInstancesIntent", &[], server.now());
    body["request"]["intent"]["slots"] = json!({"region": {
        "name": "region", "value": "Ireland", "confirmationStatus": "NONE",
        "resolutions": {"resolutionsPerAuthority": [{
            "authority": "amzn1.er-authority.echo-sdk.x.AWS_REGION",
            "status": {"code": "ER_SUCCESS_MATCH"},
            "values": [{"value": {"name": "ireland", "id": "eu-west-1"}}]
        }]}
    }});
    let response = server.say(body).await;
    assert_eq!(
        speech(&response),
        "In Ireland, 1 instance is running: web-1."
    );

    // A region code spoken as words, without a resolution.
    let response = server
        .say(intent_from(
            ALICE,
            "ListInstancesIntent",
            &[("region", "eu west one")],
            server.now(),
        ))
        .await;
    assert_eq!(
        speech(&response),
        "In Ireland, 1 instance is running: web-1."
    );

    let response = server
        .say(intent_from(
            ALICE,
            "ListInstancesIntent",
            &[("region", "mars")],
            server.now(),
        ))
        .await;
    assert!(
        speech(&response).starts_with("I don't know the region mars."),
        "{response}"
    );
}

#[tokio::test]
async fn several_accounts_are_named_in_the_answer() {
    let server = TestServer::start_full(&PKI, Backend::Sqlite, &MOTO, |_| {}).await;
    let (prod, staging) = (fresh_account_id(), fresh_account_id());
    seed_instance(&ec2_in(&prod, "eu-west-1").await, "web-1", &[], true).await;
    seed_instance(&ec2_in(&staging, "eu-west-1").await, "web-1", &[], false).await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    server.link(&acme, "prod", &prod, "eu-west-1").await;
    server.link(&acme, "staging", &staging, "eu-west-1").await;

    let response = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert_eq!(
        speech(&response),
        "In prod, Ireland, 1 instance is running: web-1. In staging, Ireland, nothing is \
         running. 1 is stopped: web-1."
    );
    let response = server
        .say(intent_from(
            ALICE,
            "InstanceStatusIntent",
            &[("instance", "web one")],
            server.now(),
        ))
        .await;
    assert_eq!(
        speech(&response),
        "More than one instance matches web one: web-1 in prod or web-1 in staging. Which one do you mean?"
    );
}

#[tokio::test]
async fn sealing_with_kms_round_trips_and_does_not_open_for_another_tenant() {
    let kms = aws_sdk_kms::Client::new(&sdk_config(&MOTO));
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let sealer = Sealer::kms(kms, key_id.clone());
    let tenant_a = SealContext::new("t_a", Purpose::ExternalId, "a_1");

    let first = sealer
        .seal(b"external-id-of-tenant-a", &tenant_a)
        .await
        .unwrap();
    let second = sealer.seal(b"another-value", &tenant_a).await.unwrap();
    assert_eq!(
        sealer.key_source_calls(),
        1,
        "the data key is reused within its bounds"
    );
    assert!(!first.as_bytes().windows(8).any(|w| w == b"external"));
    assert_eq!(
        sealer.open(&first, &tenant_a).await.unwrap().as_slice(),
        b"external-id-of-tenant-a"
    );
    assert_eq!(
        sealer.open(&second, &tenant_a).await.unwrap().as_slice(),
        b"another-value"
    );

    // Moved to another tenant, purpose or account, it does not open: KMS itself
    // refuses the data key under the other encryption context.
    let fresh = Sealer::kms(aws_sdk_kms::Client::new(&sdk_config(&MOTO)), key_id);
    for other in [
        SealContext::new("t_b", Purpose::ExternalId, "a_1"),
        SealContext::new("t_a", Purpose::RoleArn, "a_1"),
        SealContext::new("t_a", Purpose::ExternalId, "a_2"),
    ] {
        let result = fresh.open(&first, &other).await;
        assert!(matches!(result, Err(SealError::WrongContext)), "{result:?}");
    }
    assert!(format!("{first:?}").starts_with("Sealed(<"));
}

#[tokio::test]
async fn whats_running_with_secrets_sealed_by_kms() {
    let kms = aws_sdk_kms::Client::new(&sdk_config(&MOTO));
    let key_id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let server = TestServer::start_full(&PKI, Backend::Sqlite, &MOTO, |args| {
        args.sealing.kms_key_id = Some(key_id.clone());
    })
    .await;
    let account = fresh_account_id();
    seed_instance(&ec2_in(&account, "eu-west-1").await, "web-1", &[], true).await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    voxgate::accounts::link(
        server.store.as_ref(),
        &Sealer::kms(kms, key_id),
        &acme,
        &voxgate::store::AccountName::parse("prod").unwrap(),
        &voxgate::cloud::arn::RoleArn::parse(&format!(
            "arn:aws:iam::{account}:role/voxgate-access"
        ))
        .unwrap(),
        &voxgate::cloud::arn::Region::parse("eu-west-1").unwrap(),
        0,
    )
    .await
    .unwrap();
    let response = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert_eq!(
        speech(&response),
        "In Ireland, 1 instance is running: web-1."
    );
}

#[tokio::test]
async fn an_unreachable_aws_is_said_plainly() {
    let server = TestServer::start_full(&PKI, Backend::Sqlite, NO_AWS, |_| {}).await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    server
        .link(&acme, "prod", &fresh_account_id(), "eu-west-1")
        .await;
    let response = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert_eq!(
        speech(&response),
        "I couldn't reach AWS just now. Nothing was changed. Please try again."
    );
}

#[tokio::test]
async fn a_role_that_turns_voxgate_away_is_said_plainly() {
    // A moto that enforces IAM: after two free set-up calls, voxgate's own identity is an
    // IAM user without sts:AssumeRole, and STS answers AccessDenied, as AWS does when the
    // role's trust policy or ExternalId does not match.
    let strict = common::aws::spawn_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "2")]);
    common::aws::iam_call(
        &strict,
        &[("Action", "CreateUser"), ("UserName", "voxgate")],
    )
    .await;
    let key = common::aws::iam_call(
        &strict,
        &[("Action", "CreateAccessKey"), ("UserName", "voxgate")],
    )
    .await;
    let aws = common::aws::sdk_config_as(
        &strict,
        &common::aws::xml_value(&key, "AccessKeyId"),
        &common::aws::xml_value(&key, "SecretAccessKey"),
    );
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start_on(
        &PKI,
        db,
        aws,
        voxgate::clock::ManualClock::starting_now(),
        |_| {},
    )
    .await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    server
        .link(&acme, "prod", &fresh_account_id(), "eu-west-1")
        .await;
    let response = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert_eq!(
        speech(&response),
        "Your AWS account turned voxgate away: the role's trust policy or external ID doesn't \
         match what voxgate has. Nothing was changed. Ask your operator to check the account link."
    );
}

#[tokio::test]
async fn a_stranger_hears_how_to_get_set_up() {
    let server = TestServer::start(&PKI).await;
    let response = server
        .say(intent_from(
            "amzn1.ask.account.STRANGER",
            "ListInstancesIntent",
            &[],
            server.now(),
        ))
        .await;
    assert!(
        speech(&response).starts_with("I don't know you yet"),
        "{response}"
    );
    assert!(
        speech(&response).contains("the card in your Alexa app"),
        "{response}"
    );
    // The card carries the whole command the operator needs.
    assert_eq!(
        response["response"]["card"]["content"],
        "Ask your voxgate operator to enrol you:\nvoxgate user add --tenant TENANT --name NAME \
         --alexa-user-id amzn1.ask.account.STRANGER"
    );
}

#[tokio::test]
async fn a_tenant_without_accounts_is_told_so() {
    let server = TestServer::start(&PKI).await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    let response = server
        .say(intent_from(ALICE, "ListInstancesIntent", &[], server.now()))
        .await;
    assert!(
        speech(&response).contains("hasn't linked an AWS account"),
        "{response}"
    );
}

#[tokio::test]
async fn can_fulfill_claims_the_read_only_questions() {
    let server = TestServer::start(&PKI).await;
    let mut body = request_at("can-fulfill", server.now());
    body["request"]["intent"] = json!({"name": "ListInstancesIntent", "slots": {}});
    let response = server.say(body).await;
    assert_eq!(
        response["response"]["canFulfillIntent"]["canFulfill"],
        "YES"
    );
}
