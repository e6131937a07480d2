//! Cost by voice against moto: "how much have I spent this month", from Cost Explorer (moto
//! answers from results the test queues for the account), rounded as a person would say it.
#![allow(clippy::unwrap_used)]

mod common;

use common::aws::MOTO;
use common::scene::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn the_month_so_far_is_said_in_whole_units_of_the_accounts_currency() {
    let scene = scene(Backend::Sqlite).await;
    let queued = json!({
        "account_id": scene.account,
        "results": [{
            "ResultsByTime": [{
                "TimePeriod": {"Start": "2026-11-01", "End": "2026-11-25"},
                "Total": {"UnblendedCost": {"Amount": "1234.5678", "Unit": "USD"}},
                "Groups": [],
                "Estimated": true
            }]
        }]
    });
    let status = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/ce/cost-and-usage-results",
            *MOTO
        ))
        .header("content-type", "application/json")
        .body(queued.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);

    let said = scene.ask("MonthCostIntent", &[]).await;
    assert_eq!(
        speech(&said),
        "You've spent about 1,235 dollars so far this month."
    );
    let card = said["response"]["card"]["content"].as_str().unwrap();
    assert!(
        card.contains("1234.57 USD this month (estimated)"),
        "{card}"
    );

    let asked = scene
        .proxy
        .captured
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.action().as_deref() == Some("GetCostAndUsage"))
        .cloned()
        .unwrap();
    let period = &asked.json()["TimePeriod"];
    let today = scene.server.now().date();
    assert_eq!(
        period["Start"],
        format!("{}-{:02}-01", today.year(), today.month() as u8)
    );
    assert_eq!(asked.json()["Metrics"], json!(["UnblendedCost"]));
}
