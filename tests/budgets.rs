//! Budgets by voice against moto: read the monthly budget, set it through the gate (create
//! when absent, update when present: moto has no UpdateBudget, so that request is captured
//! at the proxy and checked), and amounts that are no amount are asked for again, never
//! guessed.
#![allow(clippy::unwrap_used)]

mod common;

use common::aws::sdk_in;
use common::scene::*;
use common::*;

#[tokio::test]
async fn set_then_read_then_change_the_monthly_budget_by_voice() {
    let scene = scene(Backend::Sqlite).await;
    let none = scene.ask("BudgetStatusIntent", &[]).await;
    assert_eq!(
        speech(&none),
        "You have no monthly budget. You can say \"set my monthly budget to 500 dollars\"."
    );

    let held = scene.ask("SetBudgetIntent", &[("amount", "500")]).await;
    assert_eq!(
        speech(&held),
        "I'll create a monthly budget of 500 dollars for prod, once you say the code from your \
         voxgate app."
    );
    let done = scene.approve(&held).await;
    assert_eq!(
        speech(&done),
        "Done. The monthly budget of prod is now 500 dollars."
    );
    let created = scene
        .proxy
        .captured
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.action().as_deref() == Some("CreateBudget"))
        .cloned()
        .unwrap();
    let body = created.json();
    assert_eq!(body["AccountId"], scene.account.as_str());
    assert_eq!(body["Budget"]["BudgetName"], "voxgate-monthly");
    assert_eq!(body["Budget"]["BudgetLimit"]["Amount"], "500");
    assert_eq!(body["Budget"]["TimeUnit"], "MONTHLY");

    let read = scene.ask("BudgetStatusIntent", &[]).await;
    assert!(
        speech(&read).starts_with("Your monthly budget is about 500 dollars a month"),
        "{read}"
    );

    // The same amount again: nothing to hold.
    let same = scene.ask("SetBudgetIntent", &[("amount", "500")]).await;
    assert_eq!(
        speech(&same),
        "The monthly budget of prod is already 500 dollars, so there's nothing to do. Nothing \
         was changed."
    );
    assert!(scene.nothing_held().await);

    // An update: moto does not implement UpdateBudget, so the proxy answers it and the test
    // reads what voxgate sent.
    scene.proxy.answer("UpdateBudget", "{}");
    let held = scene.ask("SetBudgetIntent", &[("amount", "800")]).await;
    assert_eq!(
        speech(&held),
        "I'll set the monthly budget of prod to 800 dollars (now 500 dollars), once you say the \
         code from your voxgate app."
    );
    let done = scene.approve(&held).await;
    assert_eq!(
        speech(&done),
        "Done. The monthly budget of prod is now 800 dollars."
    );
    let updates: Vec<_> = scene
        .proxy
        .captured
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.action().as_deref() == Some("UpdateBudget"))
        .cloned()
        .collect();
    assert_eq!(updates.len(), 1);
    let body = updates[0].json();
    assert_eq!(body["AccountId"], scene.account.as_str());
    assert_eq!(body["NewBudget"]["BudgetName"], "voxgate-monthly");
    assert_eq!(body["NewBudget"]["BudgetLimit"]["Amount"], "800");
    assert_eq!(body["NewBudget"]["BudgetLimit"]["Unit"], "USD");
    assert_eq!(body["NewBudget"]["BudgetType"], "COST");
    assert_eq!(
        outcomes(&scene.server)
            .await
            .iter()
            .filter(|o| *o == "executed")
            .count(),
        2
    );
}

#[tokio::test]
async fn no_amount_or_a_bad_one_is_asked_for_again_and_nothing_is_held() {
    let scene = scene(Backend::Sqlite).await;
    let asked = scene.ask("SetBudgetIntent", &[]).await;
    assert_eq!(speech(&asked), "What amount, in dollars?");
    assert_eq!(asked["response"]["directives"][0]["slotToElicit"], "amount");
    for bad in ["-500", "0", "?", "2000000", "lots"] {
        let asked = scene.ask("SetBudgetIntent", &[("amount", bad)]).await;
        assert_eq!(
            speech(&asked),
            format!(
                "{bad} isn't an amount I can use: say a whole number of dollars from 1 to \
                 1,000,000. What amount, in dollars?"
            )
        );
        assert_eq!(asked["response"]["directives"][0]["slotToElicit"], "amount");
        assert_eq!(asked["response"]["shouldEndSession"], false);
    }
    assert!(scene.nothing_held().await);
    assert_eq!(count(&scene.proxy, "CreateBudget"), 0);
}

#[tokio::test]
async fn a_budget_changed_after_approval_is_not_overwritten() {
    let scene = scene(Backend::Sqlite).await;
    let created = scene.ask("SetBudgetIntent", &[("amount", "300")]).await;
    let done = scene.approve(&created).await;
    assert!(speech(&done).starts_with("Done."), "{done}");

    scene.proxy.answer("UpdateBudget", "{}");
    let held = scene.ask("SetBudgetIntent", &[("amount", "400")]).await;
    assert!(speech(&held).contains("(now 300 dollars)"), "{held}");
    // The budget goes away behind voxgate's back before the code is said.
    aws_sdk_budgets::Client::new(&sdk_in(&scene.account, "us-east-1").await)
        .delete_budget()
        .account_id(&scene.account)
        .budget_name("voxgate-monthly")
        .send()
        .await
        .unwrap();
    let refused = scene.approve(&held).await;
    assert_eq!(
        speech(&refused),
        "Something changed since you approved it, so I didn't run it. Nothing was changed. Ask \
         again to see what can be done now."
    );
    assert_eq!(count(&scene.proxy, "UpdateBudget"), 0);
    assert_eq!(count(&scene.proxy, "CreateBudget"), 1);
}
