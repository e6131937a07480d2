//! The interaction model, the manifest and the router agree: every intent of the model has
//! a handler, every handler has an intent, and their slots match.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use voxgate::skill::intents::handled;

/// Every locale voxgate ships a model for (the manifest must list each one).
const LOCALES: &[&str] = &["en-US", "en-GB"];

fn load(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("skill-package")
        .join(file);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn model(locale: &str) -> Value {
    load(&format!("interactionModels/custom/{locale}.json"))
}

fn intents_of(locale: &str) -> BTreeMap<String, Value> {
    model(locale)["interactionModel"]["languageModel"]["intents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

fn model_intents() -> BTreeMap<String, Value> {
    intents_of("en-US")
}

#[test]
fn every_locale_has_the_same_intents_and_slots_and_is_in_the_manifest() {
    let manifest = load("skill.json");
    let shape = |locale: &str| -> BTreeMap<String, Value> {
        intents_of(locale)
            .into_iter()
            .map(|(name, intent)| (name, intent["slots"].clone()))
            .collect()
    };
    for locale in LOCALES {
        assert_eq!(shape(locale), shape("en-US"), "{locale}");
        assert!(
            manifest["manifest"]["publishingInformation"]["locales"][locale].is_object(),
            "{locale} is missing from the manifest"
        );
        assert_eq!(
            model(locale)["interactionModel"]["languageModel"]["invocationName"],
            "cloud gate"
        );
    }
    // `ask deploy` finds the package through ask-resources.json.
    let resources: Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("ask-resources.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        resources["profiles"]["default"]["skillMetadata"]["src"],
        "./skill-package"
    );
}

#[test]
fn model_and_router_name_the_same_intents() {
    let model: BTreeSet<String> = model_intents().into_keys().collect();
    let router: BTreeSet<String> = handled()
        .into_iter()
        .map(|(intent, _)| intent.to_owned())
        .collect();
    let without_handler: Vec<_> = model.difference(&router).collect();
    let without_intent: Vec<_> = router.difference(&model).collect();
    assert!(
        without_handler.is_empty(),
        "in the model but not routed: {without_handler:?}"
    );
    assert!(
        without_intent.is_empty(),
        "routed but not in the model: {without_intent:?}"
    );
}

#[test]
fn model_and_router_agree_on_slots() {
    let model = model_intents();
    for (intent, slots) in handled() {
        let declared: BTreeSet<(String, String)> = model[intent]["slots"]
            .as_array()
            .map(|slots| {
                slots
                    .iter()
                    .map(|s| {
                        (
                            s["name"].as_str().unwrap().to_owned(),
                            s["type"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expected: BTreeSet<(String, String)> = slots
            .iter()
            .map(|s| (s.name.to_owned(), s.slot_type.to_owned()))
            .collect();
        assert_eq!(declared, expected, "{intent}");
    }
}

#[test]
fn samples_only_use_declared_slots_and_custom_intents_have_samples() {
    for (name, intent) in model_intents() {
        let slots: BTreeSet<String> = intent["slots"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| s["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let samples = intent["samples"].as_array().unwrap();
        if !name.starts_with("AMAZON.") {
            assert!(!samples.is_empty(), "{name} needs sample utterances");
        }
        for sample in samples {
            let sample = sample.as_str().unwrap();
            for part in sample.split('{').skip(1) {
                let slot = part.split('}').next().unwrap();
                assert!(
                    slots.contains(slot),
                    "{name}: '{sample}' uses undeclared slot {slot}"
                );
            }
        }
    }
}

#[test]
fn the_invocation_name_is_cloud_gate() {
    let model = model("en-US");
    assert_eq!(
        model["interactionModel"]["languageModel"]["invocationName"],
        "cloud gate"
    );
}

#[test]
fn the_manifest_points_at_an_https_alexa_endpoint() {
    let manifest = load("skill.json");
    let endpoint = &manifest["manifest"]["apis"]["custom"]["endpoint"];
    let uri = endpoint["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("https://") && uri.ends_with("/alexa"),
        "{uri}"
    );
    assert_eq!(endpoint["sslCertificateType"], "Trusted");
    let phrases =
        manifest["manifest"]["publishingInformation"]["locales"]["en-US"]["examplePhrases"]
            .as_array()
            .unwrap();
    assert!(
        phrases
            .iter()
            .all(|p| p.as_str().unwrap().contains("cloud gate"))
    );
}

#[test]
fn every_custom_intent_has_at_least_eight_natural_samples() {
    for locale in LOCALES {
        for (name, intent) in intents_of(locale) {
            if name.starts_with("AMAZON.") {
                continue;
            }
            let samples = intent["samples"].as_array().unwrap().len();
            assert!(samples >= 8, "{locale} {name} has only {samples} samples");
        }
    }
    // The phrasings a person tries first.
    let list: Vec<String> = intents_of("en-US")["ListInstancesIntent"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_lowercase())
        .collect();
    for phrase in [
        "which instances are running",
        "show my instances",
        "what is stopped",
        "what servers do i have",
    ] {
        assert!(list.iter().any(|s| s == phrase), "'{phrase}' is missing");
    }
}
