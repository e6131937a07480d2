//! Two replicas on one PostgreSQL database, as a deployment behind a load balancer runs
//! them: two `voxgate serve` processes, set up with the operator CLI. The right code for a
//! challenge is said to both at the same moment, 200 times (a stop, then a start, of the
//! same instance, each its own challenge). Exactly one of each pair runs the operation, so
//! AWS sees exactly 200 changes; the companion stream on each replica hears every challenge
//! created.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::aws::*;
use common::process::*;
use common::scene::*;
use common::*;

const TRIALS: usize = 200;

#[tokio::test]
async fn the_same_code_on_two_voxgate_processes_runs_each_operation_once() {
    let proxy = RecordingProxy::start(&MOTO).await;
    let db = TestDb::new(Backend::Postgres).await;
    let account = fresh_account_id();
    let ec2 = ec2_in(&account, "eu-west-1").await;
    let web1 = seed_instance(&ec2, "web-1", MANAGED, true).await;
    set_up_acme(&db, &account);
    let first = Voxgate::start(&db, &proxy.url);
    let second = Voxgate::start(&db, &proxy.url);
    // A device paired through each replica, each listening to its own replica's stream.
    let phone = first.pair(&db).await;
    let tablet = second.pair(&db).await;
    let heard_first = first.count_created(&phone, TRIALS).await;
    let heard_second = second.count_created(&tablet, TRIALS).await;

    let mut ran = 0;
    for trial in 0..TRIALS {
        let (intent, done) = if trial % 2 == 0 {
            ("StopInstanceIntent", "Stopping web-1 now.")
        } else {
            ("StartInstanceIntent", "Starting web-1 now.")
        };
        // Alexa's request for the operation lands on either replica, and the app asks
        // either one for the code.
        let (holder, app) = if trial % 3 == 0 {
            (&second, (&first, &phone))
        } else {
            (&first, (&second, &tablet))
        };
        let held = holder.say(asked(intent)).await;
        let id = challenge_id(&held);
        let shown = app.0.waiting(app.1).await;
        let code = shown
            .iter()
            .find(|v| v["id"] == id.as_str())
            .unwrap_or_else(|| panic!("trial {trial}: the app shows {id}: {shown:?}"))["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let (a, b) = tokio::join!(
            first.say(code_said(&id, &code)),
            second.say(code_said(&id, &code)),
        );
        let answers = [speech(&a), speech(&b)];
        let runs = answers.iter().filter(|a| *a == done).count();
        assert_eq!(runs, 1, "trial {trial}: {answers:?}");
        ran += runs;
    }
    assert_eq!(ran, TRIALS);
    assert_eq!(
        count(&proxy, "StopInstances") + count(&proxy, "StartInstances"),
        TRIALS,
        "AWS saw exactly one change per challenge"
    );
    assert_eq!(
        state_of(&ec2, &web1).await,
        "running",
        "stopped and started 100 times"
    );
    let stories = stories(&db);
    assert_eq!(stories.len(), TRIALS);
    for story in &stories {
        // (The losing replica's answer is recorded too, after the approval.)
        assert_eq!(story[..2], ["held", "confirmed"], "{story:?}");
        assert_eq!(
            story.iter().filter(|o| *o == "executed").count(),
            1,
            "{story:?}"
        );
    }
    let verified = cli(&db, &["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("intact"),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    assert_eq!(
        heard_first.await.unwrap(),
        TRIALS,
        "the stream on the first replica"
    );
    assert_eq!(
        heard_second.await.unwrap(),
        TRIALS,
        "the stream on the second replica"
    );
}
