//! What a person hears: each request type and built-in intent through a real server,
//! signed as Alexa signs.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

async fn ask(server: &TestServer, body: serde_json::Value) -> serde_json::Value {
    let (status, response) = server.post_signed(&PKI, bytes(&body)).await;
    assert_eq!(status, 200, "{response}");
    response
}

#[tokio::test]
async fn launch_welcomes_and_keeps_listening() {
    let server = TestServer::start(&PKI).await;
    let response = ask(&server, request_at("launch", server.now())).await;
    assert_eq!(
        speech(&response),
        "Cloud gate is listening. What would you like to do?"
    );
    assert_eq!(response["response"]["shouldEndSession"], false);
    assert!(
        response["response"]["reprompt"]["outputSpeech"]["text"]
            .as_str()
            .unwrap()
            .contains("help")
    );
}

#[tokio::test]
async fn help_explains_that_changes_need_the_code_from_the_app() {
    let server = TestServer::start(&PKI).await;
    let response = ask(&server, intent_at("AMAZON.HelpIntent", &[], server.now())).await;
    let said = speech(&response);
    assert!(said.contains("code shown in your voxgate app"), "{said}");
    assert_eq!(response["response"]["shouldEndSession"], false);
}

#[tokio::test]
async fn stop_and_cancel_say_goodbye_and_end_the_session() {
    let server = TestServer::start(&PKI).await;
    for intent in ["AMAZON.StopIntent", "AMAZON.CancelIntent"] {
        let response = ask(&server, intent_at(intent, &[], server.now())).await;
        assert!(
            speech(&response).contains("Goodbye"),
            "{intent}: {response}"
        );
        assert_eq!(response["response"]["shouldEndSession"], true, "{intent}");
    }
}

#[tokio::test]
async fn fallback_and_unknown_intents_offer_help() {
    let server = TestServer::start(&PKI).await;
    for intent in ["AMAZON.FallbackIntent", "SomeIntentFromANewerModel"] {
        let response = ask(&server, intent_at(intent, &[], server.now())).await;
        assert!(
            speech(&response).contains("say help"),
            "{intent}: {response}"
        );
        assert_eq!(response["response"]["shouldEndSession"], false, "{intent}");
    }
}

#[tokio::test]
async fn navigate_home_asks_what_to_do() {
    let server = TestServer::start(&PKI).await;
    let response = ask(
        &server,
        intent_at("AMAZON.NavigateHomeIntent", &[], server.now()),
    )
    .await;
    assert_eq!(speech(&response), "Okay. What would you like to do?");
    assert_eq!(response["response"]["shouldEndSession"], false);
}

#[tokio::test]
async fn a_code_with_nothing_waiting_changes_nothing() {
    let server = TestServer::start(&PKI).await;
    let acme = server.tenant("acme").await;
    server
        .enrol(&acme, "alice", "amzn1.ask.account.AEXAMPLEUSER7QX3")
        .await;
    let response = ask(
        &server,
        intent_at("VerifyCodeIntent", &[("code", "81804")], server.now()),
    )
    .await;
    let said = speech(&response);
    assert!(said.contains("nothing waiting for a code"), "{said}");
    assert!(said.contains("nothing was changed"), "{said}");
}

#[tokio::test]
async fn session_ended_gets_an_empty_response() {
    let server = TestServer::start(&PKI).await;
    let response = ask(&server, request_at("session-ended-error", server.now())).await;
    assert_eq!(response, json!({"version": "1.0", "response": {}}));
}

#[tokio::test]
async fn skill_events_are_acknowledged() {
    let server = TestServer::start(&PKI).await;
    for fixture in ["skill-event-enabled", "skill-event-account-linked"] {
        let response = ask(&server, request_at(fixture, server.now())).await;
        assert_eq!(
            response,
            json!({"version": "1.0", "response": {}}),
            "{fixture}"
        );
    }
}

#[tokio::test]
async fn can_fulfill_declines_what_needs_a_session() {
    let server = TestServer::start(&PKI).await;
    let response = ask(&server, request_at("can-fulfill", server.now())).await;
    assert_eq!(response["response"]["canFulfillIntent"]["canFulfill"], "NO");
    assert!(response["response"].get("outputSpeech").is_none());
}

#[tokio::test]
async fn an_unknown_request_type_gets_a_polite_answer() {
    let server = TestServer::start(&PKI).await;
    let response = ask(&server, request_at("unknown-type", server.now())).await;
    assert_eq!(
        speech(&response),
        "Sorry, cloud gate can't handle that kind of request."
    );
    assert_eq!(response["response"]["shouldEndSession"], true);
}

#[tokio::test]
async fn healthz_answers() {
    let server = TestServer::start(&PKI).await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "ok");
}

#[tokio::test]
async fn the_root_page_says_what_this_is_and_links_the_companion_app() {
    let server = TestServer::start(&PKI).await;
    let (status, body) = server.get("/").await;
    assert_eq!(status, 200);
    assert!(body.contains("Cloud Gate Alexa skill"), "{body}");
    assert!(body.contains("href=\"/app\""), "{body}");
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = TestServer::start(&PKI).await;
    let (status, _) = server.get("/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn skipping_verification_accepts_unsigned_requests_but_still_checks_the_skill_id() {
    let server = TestServer::start_with(&PKI, |args| args.insecure_skip_verification = true).await;
    // Unsigned, with an old timestamp, as a local tool might send a saved fixture.
    let body = bytes(&common::fixture("launch"));
    let (status, response) = server.post(body.clone(), &[]).await;
    assert_eq!(status, 200, "{response}");

    let mut other = common::fixture("launch");
    let id = json!({"applicationId": "amzn1.ask.skill.99999999-0000-0000-0000-000000000000"});
    other["session"]["application"] = id.clone();
    other["context"]["System"]["application"] = id;
    let (status, response) = server.post(bytes(&other), &[]).await;
    assert_eq!(status, 400, "{response}");
    assert_eq!(response["reason"], "wrong-skill-id");
}

#[tokio::test]
async fn skipping_verification_refuses_requests_that_came_through_a_proxy() {
    let server = TestServer::start_with(&PKI, |args| args.insecure_skip_verification = true).await;
    for header in ["Forwarded", "X-Forwarded-For", "X-Real-IP", "Via"] {
        let body = bytes(&common::fixture("launch"));
        let (status, response) = server
            .post(body, &[(header, "for=203.0.113.9".to_owned())])
            .await;
        assert_eq!(status, 400, "{header}: {response}");
        assert_eq!(response["reason"], "proxied-request-unverified", "{header}");
    }
}
