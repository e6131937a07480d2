//! A tenant with a user and a linked account in moto holding managed and unmanaged
//! instances, for the gate and companion tests.

use serde_json::{Value, json};

use super::aws::{MOTO, RecordingProxy, ec2_in, fresh_account_id, seed_instance};
use super::*;

pub const ALICE: &str = "amzn1.ask.account.ALICE";
pub const MALLORY: &str = "amzn1.ask.account.MALLORY";
pub const MANAGED: &[(&str, &str)] = &[("voxgate:managed", "true")];

pub struct Scene {
    pub proxy: RecordingProxy,
    pub server: TestServer,
    pub ec2: aws_sdk_ec2::Client,
    pub web1: String,
    pub alice: voxgate::store::User,
    pub account: String,
}

pub async fn scene(backend: Backend) -> Scene {
    let proxy = RecordingProxy::start(&MOTO).await;
    let server = TestServer::start_full(&PKI, backend, &proxy.url, |_| {}).await;
    let account = fresh_account_id();
    let ec2 = ec2_in(&account, "eu-west-1").await;
    let web1 = seed_instance(&ec2, "web-1", MANAGED, true).await;
    seed_instance(&ec2, "build-2", MANAGED, true).await;
    seed_instance(&ec2, "db-1", &[("voxgate:managed", "false")], true).await;
    let acme = server.tenant("acme").await;
    let alice = server.enrol(&acme, "alice", ALICE).await;
    server.link(&acme, "prod", &account, "eu-west-1").await;
    Scene {
        proxy,
        server,
        ec2,
        web1,
        alice,
        account,
    }
}

pub fn critical(server: &TestServer, who: &str, intent: &str, instance: &str) -> Value {
    intent_from(who, intent, &[("instance", instance)], server.now())
}

/// What Alexa sends when the person says `code` in answer to the elicitation.
pub fn say_code(server: &TestServer, who: &str, challenge: &str, code: &str) -> Value {
    // AMAZON.NUMBER drops leading zeros: "081804" arrives as "81804". (A code with three
    // or more, "000123", is taken as said digit by digit.) Anything else is sent as given.
    let trimmed = code.trim_start_matches('0');
    let spoken = if code.len() == 6 && trimmed.len() >= 4 {
        trimmed
    } else {
        code
    };
    let mut body = intent_from(who, "VerifyCodeIntent", &[("code", spoken)], server.now());
    body["session"]["attributes"] = json!({"challengeId": challenge});
    body
}

pub fn challenge_id(response: &Value) -> String {
    response["sessionAttributes"]["challengeId"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge in {response}"))
        .to_owned()
}

pub async fn code_for(scene: &Scene, challenge: &str) -> String {
    let held = scene
        .server
        .gate
        .challenge_of(&scene.alice, challenge)
        .await
        .unwrap()
        .unwrap();
    scene.server.gate.current_code(&held).await.unwrap().code
}

pub async fn state_of(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_owned()
}

/// Outcomes of pairing and devices, left out of [`outcomes`].
pub const DEVICE_OUTCOMES: &[&str] = &[
    "pairing-code-issued",
    "paired",
    "pairing-failed",
    "unpaired",
    "device-revoked",
];

/// The audit log's outcomes about operations, oldest first.
pub async fn outcomes(server: &TestServer) -> Vec<String> {
    server
        .store
        .audit_records(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.outcome)
        .filter(|o| !DEVICE_OUTCOMES.contains(&o.as_str()))
        .collect()
}

/// The audit log's outcomes about pairing and devices, oldest first.
pub async fn device_outcomes(server: &TestServer) -> Vec<String> {
    server
        .store
        .audit_records(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.outcome)
        .filter(|o| DEVICE_OUTCOMES.contains(&o.as_str()))
        .collect()
}

pub fn count(proxy: &RecordingProxy, action: &str) -> usize {
    proxy
        .captured
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.action().as_deref() == Some(action))
        .count()
}

impl Scene {
    /// Alice says `intent` with `slots`; what voxgate answered.
    #[allow(dead_code)]
    pub async fn ask(&self, intent: &str, slots: &[(&str, &str)]) -> Value {
        self.server
            .say(intent_from(ALICE, intent, slots, self.server.now()))
            .await
    }

    /// Alice says the code her app shows for the challenge `held` asked for; the answer.
    #[allow(dead_code)]
    pub async fn approve(&self, held: &Value) -> Value {
        let id = challenge_id(held);
        let code = code_for(self, &id).await;
        self.server
            .say(say_code(&self.server, ALICE, &id, &code))
            .await
    }

    /// Whether Alice has nothing waiting for a code.
    #[allow(dead_code)]
    pub async fn nothing_held(&self) -> bool {
        self.server
            .gate
            .pending(&self.alice.id)
            .await
            .unwrap()
            .is_none()
    }

    /// Alice asks for `intent` on `instance`; the response and the held challenge's id.
    pub async fn hold(&self, intent: &str, instance: &str) -> (Value, String) {
        let held = self
            .server
            .say(critical(&self.server, ALICE, intent, instance))
            .await;
        let id = challenge_id(&held);
        (held, id)
    }
}

/// A six-digit code that is not `code` (`by` steps away).
pub fn wrong_code(code: &str, by: u32) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + by) % 1_000_000)
}
