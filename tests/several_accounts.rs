//! A tenant with several AWS accounts: answers are grouped by account, same-named
//! instances are told apart by "the one in staging" or "the first one" (asked once, never
//! in a loop), and an account that cannot be reached answers for itself while the others
//! still answer.
#![allow(clippy::unwrap_used)]

mod common;

use common::aws::{MOTO, RecordingProxy, ec2_in, fresh_account_id, seed_instance};
use common::scene::{ALICE, MANAGED};
use common::*;
use serde_json::Value;

struct Tenant {
    server: TestServer,
    proxy: RecordingProxy,
    staging: String,
}

/// prod (web-1 running) and staging (web-1 stopped), both managed.
async fn two_accounts() -> Tenant {
    let proxy = RecordingProxy::start(&MOTO).await;
    let server = TestServer::start_full(&PKI, Backend::Sqlite, &proxy.url, |_| {}).await;
    let (prod, staging) = (fresh_account_id(), fresh_account_id());
    seed_instance(&ec2_in(&prod, "eu-west-1").await, "web-1", MANAGED, true).await;
    seed_instance(
        &ec2_in(&staging, "eu-west-1").await,
        "web-1",
        MANAGED,
        false,
    )
    .await;
    let acme = server.tenant("acme").await;
    server.enrol(&acme, "alice", ALICE).await;
    server.link(&acme, "prod", &prod, "eu-west-1").await;
    server.link(&acme, "staging", &staging, "eu-west-1").await;
    Tenant {
        server,
        proxy,
        staging,
    }
}

impl Tenant {
    async fn ask(&self, intent: &str, instance: &str) -> Value {
        let slots: &[(&str, &str)] = if instance.is_empty() {
            &[]
        } else {
            &[("instance", instance)]
        };
        self.server
            .say(intent_from(ALICE, intent, slots, self.server.now()))
            .await
    }

    /// The answer to voxgate's question, in the same session.
    async fn answer(&self, previous: &Value, intent: &str, instance: &str) -> Value {
        let mut body = intent_from(ALICE, intent, &[("instance", instance)], self.server.now());
        body["session"]["attributes"] = previous["sessionAttributes"].clone();
        self.server.say(body).await
    }
}

#[tokio::test]
async fn same_named_instances_are_told_apart_by_account_or_order() {
    let t = two_accounts().await;
    let asked = t.ask("InstanceStatusIntent", "web one").await;
    assert_eq!(
        speech(&asked),
        "More than one instance matches web one: web-1 in prod or web-1 in staging. Which one \
         do you mean?"
    );
    assert_eq!(
        asked["response"]["directives"][0]["type"],
        "Dialog.ElicitSlot"
    );
    assert_eq!(asked["response"]["shouldEndSession"], false);

    for (said, state) in [
        ("the one in staging", "stopped"),
        ("staging", "stopped"),
        ("the first one", "running"),
        ("the second one", "stopped"),
        ("prod", "running"),
    ] {
        let answered = t.answer(&asked, "InstanceStatusIntent", said).await;
        assert_eq!(speech(&answered), format!("web-1 is {state}."), "{said}");
    }

    // An answer that still fits none ends the question: it is not asked again.
    let answered = t
        .answer(&asked, "InstanceStatusIntent", "the purple one")
        .await;
    assert_eq!(
        speech(&answered),
        "I still can't tell which one you mean, so I'll stop here. Nothing was changed. Ask \
         again with the account's name, like web-1 in prod."
    );
    assert_eq!(answered["response"]["shouldEndSession"], true);

    // A change: the one in staging is the one held, read back with its account.
    let asked = t.ask("StartInstanceIntent", "web one").await;
    assert!(speech(&asked).starts_with("More than one instance matches web one"));
    let held = t
        .answer(&asked, "StartInstanceIntent", "the one in staging")
        .await;
    assert_eq!(
        speech(&held),
        "I'll start web-1 in staging, Ireland, once you say the code from your voxgate app."
    );
}

#[tokio::test]
async fn one_unreachable_account_answers_for_itself_and_the_others_still_answer() {
    let t = two_accounts().await;
    t.proxy.refuse_roles_in(&t.staging);
    let listed = t.ask("ListInstancesIntent", "").await;
    assert_eq!(
        speech(&listed),
        "In prod, Ireland, 1 instance is running: web-1. In staging, Ireland, your AWS account \
         turned voxgate away."
    );
    let card = listed["response"]["card"]["content"].as_str().unwrap();
    assert!(
        card.contains("staging (eu-west-1):\n  could not answer"),
        "{card}"
    );

    let vpn = t.ask("VpnStatusIntent", "").await;
    assert_eq!(
        speech(&vpn),
        "In prod, Ireland, there's no VPN connection. In staging, Ireland, your AWS account \
         turned voxgate away."
    );

    // The name is found where it can be looked for.
    let status = t.ask("InstanceStatusIntent", "web one").await;
    assert_eq!(speech(&status), "web-1 is running.");
    // A name found nowhere reachable is not called missing outright.
    let status = t.ask("InstanceStatusIntent", "db one").await;
    assert!(
        speech(&status).contains("I couldn't reach every account"),
        "{status}"
    );
}

#[tokio::test]
async fn an_account_wide_change_asks_which_account_and_never_guesses() {
    let t = two_accounts().await;
    let asked = t
        .server
        .say(intent_from(
            ALICE,
            "SetBudgetIntent",
            &[("amount", "500")],
            t.server.now(),
        ))
        .await;
    assert_eq!(speech(&asked), "Which account: prod or staging?");
    assert_eq!(
        asked["response"]["directives"][0]["slotToElicit"],
        "account"
    );
    let held = t
        .server
        .say(intent_from(
            ALICE,
            "SetBudgetIntent",
            &[("amount", "500"), ("account", "staging")],
            t.server.now(),
        ))
        .await;
    assert_eq!(
        speech(&held),
        "I'll create a monthly budget of 500 dollars for staging, once you say the code from \
         your voxgate app."
    );
    // Budgets answer per account, without a region.
    let read = t
        .server
        .say(intent_from(
            ALICE,
            "BudgetStatusIntent",
            &[],
            t.server.now(),
        ))
        .await;
    assert_eq!(
        speech(&read),
        "In prod, you have no monthly budget. You can say \"set my monthly budget to 500 \
         dollars\". In staging, you have no monthly budget. You can say \"set my monthly \
         budget to 500 dollars\"."
    );
}

/// "Which one?" answered, then "should I replace the waiting one?" answered yes: what is
/// held is the instance the person chose, not whatever the answer matches on its own.
#[tokio::test]
async fn yes_to_replacing_holds_exactly_the_instance_chosen() {
    let t = two_accounts().await;
    t.ask("StartInstanceIntent", "web one").await; // ambiguous; nothing held
    let asked = t.ask("RebootInstanceIntent", "web one").await;
    let first = t
        .answer(&asked, "RebootInstanceIntent", "the one in prod")
        .await;
    assert!(
        speech(&first).starts_with("I'll reboot web-1 in prod, Ireland"),
        "{first}"
    );
    let asked = t.ask("StartInstanceIntent", "web one").await;
    let question = t.answer(&asked, "StartInstanceIntent", "staging").await;
    assert!(
        speech(&question).starts_with("You already have an approval waiting: Reboot web-1 in prod"),
        "{question}"
    );
    assert!(
        speech(&question).contains("Start web-1 in staging"),
        "{question}"
    );
    let mut yes = intent_from(
        ALICE,
        "StartInstanceIntent",
        &[("instance", "staging")],
        t.server.now(),
    );
    yes["session"]["attributes"] = question["sessionAttributes"].clone();
    yes["request"]["intent"]["confirmationStatus"] = serde_json::json!("CONFIRMED");
    let held = t.server.say(yes).await;
    assert_eq!(
        speech(&held),
        "I'll start web-1 in staging, Ireland, once you say the code from your voxgate app."
    );
}
