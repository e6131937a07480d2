//! Systems Manager by voice: the agent's state (moto has no DescribeInstanceInformation, so
//! the proxy answers it and the test checks what voxgate asked), the health check through
//! the gate (SendCommand of the customer's own document on a managed instance only), and
//! its result.
#![allow(clippy::unwrap_used)]

mod common;

use common::scene::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn the_agent_state_is_read_for_the_named_instance() {
    let scene = scene(Backend::Sqlite).await;
    let online = json!({"InstanceInformationList": [
        {"InstanceId": scene.web1, "PingStatus": "Online", "AgentVersion": "3.3.1"}
    ]});
    scene
        .proxy
        .answer("DescribeInstanceInformation", &online.to_string());
    let said = scene
        .ask("SsmAgentStatusIntent", &[("instance", "web one")])
        .await;
    assert_eq!(speech(&said), "Yes, the SSM agent on web-1 is online.");
    let asked = scene
        .proxy
        .captured
        .lock()
        .unwrap()
        .iter()
        .rfind(|c| c.action().as_deref() == Some("DescribeInstanceInformation"))
        .cloned()
        .unwrap();
    assert_eq!(
        asked.json()["Filters"],
        json!([{"Key": "InstanceIds", "Values": [scene.web1]}])
    );

    let lost = json!({"InstanceInformationList": [
        {"InstanceId": scene.web1, "PingStatus": "ConnectionLost"}
    ]});
    scene
        .proxy
        .answer("DescribeInstanceInformation", &lost.to_string());
    let said = scene
        .ask("SsmAgentStatusIntent", &[("instance", "web one")])
        .await;
    assert_eq!(
        speech(&said),
        "The SSM agent on web-1 isn't answering: SSM says connection lost."
    );

    scene.proxy.answer(
        "DescribeInstanceInformation",
        &json!({"InstanceInformationList": []}).to_string(),
    );
    let said = scene
        .ask("SsmAgentStatusIntent", &[("instance", "build two")])
        .await;
    assert_eq!(
        speech(&said),
        "build-2 isn't registered with SSM, so its agent isn't running, or it can't reach SSM."
    );
}

#[tokio::test]
async fn the_health_check_runs_the_customers_document_on_a_managed_instance() {
    let scene = scene(Backend::Sqlite).await;
    // Without the customer's document there is nothing to run, and nothing is held.
    let missing = scene
        .ask("RunHealthCheckIntent", &[("instance", "web one")])
        .await;
    assert_eq!(
        speech(&missing),
        "There's no voxgate health check in prod, Ireland: the voxgate-HealthCheck document \
         from voxgate's role template isn't there. Nothing was changed."
    );
    assert!(scene.nothing_held().await);
    // What the customer's CloudFormation stack creates.
    common::aws::health_check_document(&scene.account).await;

    let none = scene
        .ask("HealthCheckResultIntent", &[("instance", "web one")])
        .await;
    assert_eq!(
        speech(&none),
        "No health check has been run on web-1 yet. Say \"run the health check on web-1\"."
    );

    let held = scene
        .ask("RunHealthCheckIntent", &[("instance", "web one")])
        .await;
    assert_eq!(
        speech(&held),
        "I'll run the health check on web-1 in prod, Ireland, once you say the code from your \
         voxgate app."
    );
    let done = scene.approve(&held).await;
    assert!(
        speech(&done).starts_with("Sent the health check to web-1; SSM has it as "),
        "{done}"
    );
    let sent = scene
        .proxy
        .captured
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.action().as_deref() == Some("SendCommand"))
        .cloned()
        .unwrap();
    assert_eq!(sent.json()["DocumentName"], "voxgate-HealthCheck");
    // The version approved, not whatever the document says by the time it runs.
    assert_eq!(sent.json()["DocumentVersion"], "1");
    assert_eq!(sent.json()["InstanceIds"], json!([scene.web1]));
    let card = done["response"]["card"]["content"].as_str().unwrap();
    assert!(card.contains("SSM command "), "{card}");

    let result = scene
        .ask("HealthCheckResultIntent", &[("instance", "web one")])
        .await;
    assert!(
        speech(&result).starts_with("The last health check on web-1 "),
        "{result}"
    );
    let card = result["response"]["card"]["content"].as_str().unwrap();
    assert!(card.contains("health check command "), "{card}");

    // Never on an instance voxgate does not manage.
    let refused = scene
        .ask("RunHealthCheckIntent", &[("instance", "db one")])
        .await;
    assert!(
        speech(&refused).starts_with("db-1 isn't managed by voxgate"),
        "{refused}"
    );
    assert_eq!(count(&scene.proxy, "SendCommand"), 1);
}
