//! The security check by voice against moto: security groups open to the world, the
//! password policy and old access keys, counted in speech and listed on the card.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_ec2::types::{IpPermission, IpRange};
use common::aws::sdk_in;
use common::scene::*;
use common::*;

async fn open_group(ec2: &aws_sdk_ec2::Client, name: &str, port: i32, cidr: &str) {
    let group = ec2
        .create_security_group()
        .group_name(name)
        .description(name)
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(group.group_id().unwrap())
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_security_check_counts_in_speech_and_lists_on_the_card() {
    let scene = scene(Backend::Sqlite).await;
    // A key counts as old after 90 days by default; the keys moto makes are new.
    open_group(&scene.ec2, "ssh-open", 22, "0.0.0.0/0").await;
    open_group(&scene.ec2, "rdp-open", 3389, "0.0.0.0/0").await;
    open_group(&scene.ec2, "https", 443, "0.0.0.0/0").await;
    open_group(&scene.ec2, "ssh-office", 22, "203.0.113.0/24").await;
    let iam = aws_sdk_iam::Client::new(&sdk_in(&scene.account, "us-east-1").await);
    iam.create_user().user_name("deploy").send().await.unwrap();
    iam.create_access_key()
        .user_name("deploy")
        .send()
        .await
        .unwrap();

    let said = scene.ask("SecurityCheckIntent", &[]).await;
    assert_eq!(
        speech(&said),
        "In Ireland, 2 security groups are open to the world (1 on SSH, 1 on RDP) and the \
         account has no password policy. The card lists them."
    );
    let card = said["response"]["card"]["content"].as_str().unwrap();
    assert!(card.contains("ssh-open (sg-"), "{card}");
    assert!(card.contains("open to the world on RDP (3389)"), "{card}");
    assert!(!card.contains("https"), "{card}");
    assert!(!card.contains("ssh-office"), "{card}");

    // A strong policy; and with an age limit of 0 days (`--security-key-age-days 0`) the
    // key counts as old.
    iam.update_account_password_policy()
        .minimum_password_length(16)
        .require_symbols(true)
        .require_numbers(true)
        .require_uppercase_characters(true)
        .require_lowercase_characters(true)
        .send()
        .await
        .unwrap();
    let strict = TestServer::start_full(&PKI, Backend::Sqlite, &scene.proxy.url, |args| {
        args.security_key_age_days = 0;
    })
    .await;
    let acme = strict.tenant("acme").await;
    strict.enrol(&acme, "alice", ALICE).await;
    strict
        .link(&acme, "prod", &scene.account, "eu-west-1")
        .await;
    // The key was made a moment ago; moto keeps its creation time to the second.
    strict.clock.advance(time::Duration::seconds(2));
    let said = strict
        .say(intent_from(ALICE, "SecurityCheckIntent", &[], strict.now()))
        .await;
    assert_eq!(
        speech(&said),
        "In Ireland, 2 security groups are open to the world (1 on SSH, 1 on RDP) and 1 access \
         key is older than 0 days. The card lists them."
    );
    let card = said["response"]["card"]["content"].as_str().unwrap();
    assert!(card.contains("of deploy is 0 days old"), "{card}");
    assert!(card.contains("password policy: strong"), "{card}");
}
