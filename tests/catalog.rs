//! The operation catalog by voice against moto: the region slot and "nothing to do" on
//! instances, the cleanup report and the cleanup through the gate, the VPN status; and the
//! catalog against the customer role's template.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{DomainType, ResourceType, Tag, TagSpecification};
use common::aws::{MOTO, ec2_in, fresh_account_id, seed_instance};
use common::scene::*;
use common::*;
use serde_json::Value;

fn tags(resource: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (k, v) in pairs {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

async fn volume(ec2: &aws_sdk_ec2::Client, name: &str, managed: bool) -> String {
    let mut pairs = vec![("Name", name)];
    if managed {
        pairs.push(("voxgate:managed", "true"));
    }
    ec2.create_volume()
        .availability_zone("eu-west-1a")
        .size(10)
        .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
        .tag_specifications(tags(ResourceType::Volume, &pairs))
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_owned()
}

async fn volume_ids(ec2: &aws_sdk_ec2::Client) -> BTreeSet<String> {
    ec2.describe_volumes()
        .send()
        .await
        .unwrap()
        .volumes()
        .iter()
        .map(|v| v.volume_id().unwrap().to_owned())
        .collect()
}

async fn elastic_ip(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.allocate_address()
        .domain(DomainType::Vpc)
        .tag_specifications(tags(
            ResourceType::ElasticIp,
            &[("voxgate:managed", "true")],
        ))
        .send()
        .await
        .unwrap()
        .allocation_id()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_operation_that_would_do_nothing_is_not_held() {
    let scene = scene(Backend::Sqlite).await;
    let build3 = seed_instance(&scene.ec2, "build-3", MANAGED, false).await;
    assert_eq!(state_of(&scene.ec2, &build3).await, "stopped");
    let response = scene
        .ask("StopInstanceIntent", &[("instance", "build three")])
        .await;
    assert_eq!(
        speech(&response),
        "build-3 is already stopped, so there's nothing to do. Nothing was changed."
    );
    assert!(
        response["sessionAttributes"]["challengeId"].is_null(),
        "{response}"
    );
    assert!(scene.nothing_held().await, "nothing may be held");
    assert_eq!(count(&scene.proxy, "StopInstances"), 0);
}

#[tokio::test]
async fn a_region_slot_names_where_the_instance_is() {
    let scene = scene(Backend::Sqlite).await;
    let ohio = ec2_in(&scene.account, "us-east-2").await;
    let reports = seed_instance(&ohio, "reports", MANAGED, true).await;

    // Not in the account's default region.
    let response = scene
        .ask("StopInstanceIntent", &[("instance", "reports")])
        .await;
    assert!(speech(&response).contains("couldn't find"), "{response}");

    let held = scene
        .ask(
            "StopInstanceIntent",
            &[("instance", "reports"), ("region", "us east two")],
        )
        .await;
    assert_eq!(
        speech(&held),
        "I'll stop reports in prod, Ohio, once you say the code from your voxgate app."
    );
    let done = scene.approve(&held).await;
    assert_eq!(speech(&done), "Stopping reports now.");
    assert!(["stopping", "stopped"].contains(&state_of(&ohio, &reports).await.as_str()));

    // A region that does not exist is said back, not guessed.
    let response = scene
        .ask(
            "StartInstanceIntent",
            &[("instance", "reports"), ("region", "mars")],
        )
        .await;
    assert!(speech(&response).contains("mars"), "{response}");
    assert!(scene.nothing_held().await);
}

#[tokio::test]
async fn cleanup_reports_then_deletes_exactly_the_managed_unused_resources() {
    let scene = scene(Backend::Sqlite).await;
    let ec2 = &scene.ec2;
    let scratch = volume(ec2, "scratch", true).await;
    let keep = volume(ec2, "keep-me", false).await;
    let address = elastic_ip(ec2).await;

    let report = scene.ask("CleanupReportIntent", &[]).await;
    assert_eq!(
        speech(&report),
        "In Ireland, you have 2 unattached volumes and 1 unused Elastic IP, costing about \
         6 dollars a month. 2 of them carry voxgate's tag; say \"clean up unused resources\" \
         to delete those."
    );
    let card = report["response"]["card"]["content"].as_str().unwrap();
    for id in [&scratch, &keep, &address] {
        assert!(card.contains(id.as_str()), "{card}");
    }

    let held = scene.ask("CleanupIntent", &[]).await;
    assert_eq!(
        speech(&held),
        "I'll delete 1 unattached volume and 1 unused Elastic IP in prod, Ireland, saving about \
         5 dollars a month, once you say the code from your voxgate app."
    );
    let done = scene.approve(&held).await;
    assert_eq!(
        speech(&done),
        "Deleted 1 unattached volume and 1 unused Elastic IP, saving about 5 dollars a month."
    );

    let left = volume_ids(ec2).await;
    assert!(!left.contains(&scratch), "the managed volume is deleted");
    assert!(left.contains(&keep), "the unmanaged volume is left alone");
    let addresses = ec2.describe_addresses().send().await.unwrap();
    assert!(
        addresses
            .addresses()
            .iter()
            .all(|a| a.allocation_id() != Some(address.as_str()))
    );
    assert_eq!(
        outcomes(&scene.server).await,
        ["held", "confirmed", "executed"]
    );

    // The deletion session could delete exactly those two, under the managed tag.
    let policy = scene
        .proxy
        .assume_role_calls()
        .iter()
        .filter_map(|c| c.field("Policy"))
        .find(|p| p.contains("ec2:DeleteVolume"))
        .unwrap();
    let policy: Value = serde_json::from_str(&policy).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{policy}");
    assert_eq!(
        statements[0]["Resource"][0],
        format!("arn:aws:ec2:eu-west-1:{}:volume/{scratch}", scene.account)
    );
    assert_eq!(statements[1]["Action"][0], "ec2:ReleaseAddress");
    for s in statements {
        assert_eq!(
            s["Condition"]["StringEquals"]["aws:ResourceTag/voxgate:managed"],
            "true"
        );
    }

    // Nothing managed left: nothing is held.
    let again = scene.ask("CleanupIntent", &[]).await;
    assert!(
        speech(&again).starts_with("Nothing that voxgate manages is unused."),
        "{again}"
    );
    assert!(scene.nothing_held().await);
}

#[tokio::test]
async fn a_cleanup_whose_resources_changed_after_approval_deletes_nothing() {
    let scene = scene(Backend::Sqlite).await;
    let ec2 = &scene.ec2;
    let scratch = volume(ec2, "scratch", true).await;
    let held = scene.ask("CleanupIntent", &[]).await;
    // Someone attaches the volume before the code is said.
    ec2.attach_volume()
        .volume_id(&scratch)
        .instance_id(&scene.web1)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    let done = scene.approve(&held).await;
    assert!(
        speech(&done).starts_with("Something changed since you approved it"),
        "{done}"
    );
    assert!(volume_ids(ec2).await.contains(&scratch));
    assert_eq!(count(&scene.proxy, "DeleteVolume"), 0);
    assert_eq!(
        outcomes(&scene.server).await,
        ["held", "confirmed", "failed"]
    );
}

#[tokio::test]
async fn a_cleanup_part_without_an_answer_is_reported_as_unknown_and_the_rest_left_alone() {
    let scene = scene(Backend::Sqlite).await;
    let ec2 = &scene.ec2;
    let scratch = volume(ec2, "scratch", true).await;
    let address = elastic_ip(ec2).await;
    let held = scene.ask("CleanupIntent", &[]).await;
    // The volume goes first and is deleted; the address release gets no answer.
    scene.proxy.hang_on("ReleaseAddress");
    let done = tokio::time::timeout(std::time::Duration::from_secs(8), scene.approve(&held))
        .await
        .expect("an answer within the 8 s Alexa waits");
    assert_eq!(
        speech(&done),
        format!(
            "Deleted 1 unattached volume, saving less than a dollar a month. AWS didn't answer \
             about {address}, so please check it; I won't retry."
        )
    );
    assert!(!volume_ids(ec2).await.contains(&scratch));
    assert_eq!(count(&scene.proxy, "ReleaseAddress"), 1, "sent once");
    assert_eq!(
        outcomes(&scene.server).await,
        ["held", "confirmed", "outcome-unknown"]
    );
}

#[tokio::test]
async fn a_slow_cleanup_sends_no_deletion_it_could_not_finish_in_time() {
    let scene = scene(Backend::Sqlite).await;
    let ec2 = &scene.ec2;
    let mut volumes = Vec::new();
    for i in 0..5 {
        volumes.push(volume(ec2, &format!("scratch-{i}"), true).await);
    }
    let held = scene.ask("CleanupIntent", &[]).await;
    // Each deletion takes 1.5 s: all five would run past Alexa's 8 s.
    scene
        .proxy
        .delay_on("DeleteVolume", std::time::Duration::from_millis(1500));
    let done = tokio::time::timeout(std::time::Duration::from_secs(8), scene.approve(&held))
        .await
        .expect("an answer within the 8 s Alexa waits");
    let said = speech(&done);
    let sent = count(&scene.proxy, "DeleteVolume");
    assert!((1..5).contains(&sent), "{sent} deletions sent");
    let left = volume_ids(ec2).await;
    let deleted = volumes.iter().filter(|v| !left.contains(*v)).count();
    assert_eq!(
        deleted, sent,
        "every deletion sent was answered and is known"
    );
    assert!(
        said.starts_with(&format!("Deleted {deleted} unattached volume")),
        "{said}"
    );
    let rest = match 5 - sent {
        1 => "1 resource".to_owned(),
        n => format!("{n} resources"),
    };
    assert!(
        said.ends_with(&format!(
            "I didn't get to {rest}; ask again to clean up the rest."
        )),
        "{said}"
    );
    assert_eq!(
        outcomes(&scene.server).await,
        ["held", "confirmed", "executed"]
    );
}

#[tokio::test]
async fn vpn_status_names_each_connection() {
    let scene = scene(Backend::Sqlite).await;
    let ec2 = &scene.ec2;
    let customer = ec2
        .create_customer_gateway()
        .r#type(aws_sdk_ec2::types::GatewayType::Ipsec1)
        .public_ip("203.0.113.10")
        .bgp_asn(65000)
        .send()
        .await
        .unwrap();
    let vgw = ec2
        .create_vpn_gateway()
        .r#type(aws_sdk_ec2::types::GatewayType::Ipsec1)
        .send()
        .await
        .unwrap();
    ec2.create_vpn_connection()
        .r#type("ipsec.1")
        .customer_gateway_id(
            customer
                .customer_gateway()
                .unwrap()
                .customer_gateway_id()
                .unwrap(),
        )
        .vpn_gateway_id(vgw.vpn_gateway().unwrap().vpn_gateway_id().unwrap())
        .tag_specifications(tags(ResourceType::VpnConnection, &[("Name", "office")]))
        .send()
        .await
        .unwrap();
    let response = scene
        .server
        .say(intent_from(
            ALICE,
            "VpnStatusIntent",
            &[],
            scene.server.now(),
        ))
        .await;
    let said = speech(&response);
    assert!(said.starts_with("In Ireland, office "), "{said}");
    assert_eq!(response["response"]["shouldEndSession"], true);
}

/// The IAM actions `Effect: Allow` statements of the customer role grant.
fn granted_actions() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/customer-role.yaml");
    let template: serde_yaml::Value =
        serde_yaml::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut granted = BTreeSet::new();
    let policies = template["Resources"]["VoxgateRole"]["Properties"]["Policies"]
        .as_sequence()
        .unwrap();
    for policy in policies {
        for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            if statement["Effect"].as_str() != Some("Allow") {
                continue;
            }
            match &statement["Action"] {
                serde_yaml::Value::String(action) => {
                    granted.insert(action.clone());
                }
                serde_yaml::Value::Sequence(actions) => {
                    granted.extend(actions.iter().map(|a| a.as_str().unwrap().to_owned()));
                }
                other => panic!("unexpected Action {other:?}"),
            }
        }
    }
    granted
}

#[test]
fn the_customer_role_grants_exactly_what_the_catalog_declares() {
    let declared: BTreeSet<String> = voxgate::ops::catalog::declarations()
        .flat_map(|d| d.iam_actions.iter().map(|a| (*a).to_owned()))
        .collect();
    let granted = granted_actions();
    let missing: Vec<_> = declared.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&declared).collect();
    assert!(missing.is_empty(), "declared but not granted: {missing:?}");
    assert!(
        extra.is_empty(),
        "granted but needed by no operation: {extra:?}"
    );
}

#[tokio::test]
async fn the_cleanup_report_counts_snapshots_once_they_are_old_enough() {
    for (age_days, listed) in [(90u16, false), (0, true)] {
        let server = TestServer::start_full(&PKI, Backend::Sqlite, &MOTO, |args| {
            args.cleanup_snapshot_age_days = age_days;
        })
        .await;
        let account = fresh_account_id();
        let ec2 = ec2_in(&account, "eu-west-1").await;
        let source = volume(&ec2, "source", false).await;
        // The volume is in use, so only the snapshot can be unused.
        let web = seed_instance(&ec2, "web-1", MANAGED, true).await;
        ec2.attach_volume()
            .volume_id(&source)
            .instance_id(&web)
            .device("/dev/sdf")
            .send()
            .await
            .unwrap();
        ec2.create_snapshot()
            .volume_id(&source)
            .tag_specifications(tags(ResourceType::Snapshot, &[("voxgate:managed", "true")]))
            .send()
            .await
            .unwrap();
        let acme = server.tenant("acme").await;
        server.enrol(&acme, "alice", ALICE).await;
        server.link(&acme, "prod", &account, "eu-west-1").await;
        // The snapshot was made a moment ago and moto keeps its time to the second: let
        // voxgate's clock move past it, so "0 days old" is not decided by the same second.
        server.clock.advance(time::Duration::seconds(2));
        let report = server
            .say(intent_from(ALICE, "CleanupReportIntent", &[], server.now()))
            .await;
        let said = speech(&report);
        if listed {
            assert!(
                said.starts_with("In Ireland, you have 1 old snapshot, costing "),
                "{said}"
            );
        } else {
            assert_eq!(said, "In Ireland, nothing is unused.", "{age_days} days");
        }
    }
}

/// At the start of a session that stays open, Alexa learns the person's own instance names.
#[tokio::test]
async fn a_new_session_teaches_alexa_the_persons_instance_names() {
    let scene = scene(Backend::Sqlite).await;
    let mut launch = intent_from(ALICE, "AMAZON.HelpIntent", &[], scene.server.now());
    launch["session"]["new"] = serde_json::json!(true);
    launch["request"] = serde_json::json!({
        "type": "LaunchRequest",
        "requestId": launch["request"]["requestId"].clone(),
        "timestamp": launch["request"]["timestamp"].clone(),
        "locale": "en-US",
    });
    let response = scene.server.say(launch).await;
    let directive = &response["response"]["directives"][0];
    assert_eq!(directive["type"], "Dialog.UpdateDynamicEntities");
    assert_eq!(directive["updateBehavior"], "REPLACE");
    assert_eq!(directive["types"][0]["name"], "INSTANCE_NAME");
    let values = directive["types"][0]["values"].as_array().unwrap();
    let web1 = values
        .iter()
        .find(|v| v["id"] == scene.web1.as_str())
        .unwrap();
    assert_eq!(web1["name"]["value"], "web-1");
    assert_eq!(web1["name"]["synonyms"], serde_json::json!(["web 1"]));
    assert_eq!(values.len(), 3, "{values:?}");
    assert_eq!(response["response"]["shouldEndSession"], false);

    // A later turn of the session, or one that ends it, carries none.
    let help = scene.ask("AMAZON.HelpIntent", &[]).await;
    assert!(help["response"]["directives"].is_null(), "{help}");
    // Nor a one-shot request that opens a session ("ask cloud gate for help"): only opening
    // the skill pays for looking the names up.
    let mut one_shot = intent_from(ALICE, "AMAZON.HelpIntent", &[], scene.server.now());
    one_shot["session"]["new"] = serde_json::json!(true);
    let help = scene.server.say(one_shot).await;
    assert_eq!(help["response"]["shouldEndSession"], false, "{help}");
    assert!(help["response"]["directives"].is_null(), "{help}");
}
