//! Properties that must hold for every input, not just the examples elsewhere: how a spoken
//! code is read, how an operation's digest pins its parameters, and how its summary reads.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use voxgate::gate::SpokenCode;
use voxgate::ops::catalog::Operation;
use voxgate::ops::instances::{Action, InstanceOperation};

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Start),
        Just(Action::Stop),
        Just(Action::Reboot)
    ]
}

/// Instance operations as voxgate builds them: ids and names without line breaks.
fn instance_operation() -> impl Strategy<Value = InstanceOperation> {
    (
        action(),
        "a_[0-9a-f]{24}",
        "[a-z][a-z0-9-]{0,20}",
        prop_oneof![Just("eu-west-1"), Just("us-east-1"), Just("ap-south-2")],
        "i-[0-9a-f]{17}",
        "[a-z][a-z0-9 -]{0,30}",
    )
        .prop_map(
            |(action, account_id, account_name, region, instance_id, instance_name)| {
                InstanceOperation {
                    action,
                    account_id,
                    account_name,
                    region: region.to_owned(),
                    instance_id,
                    instance_name,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// One to six digits are a code, padded to six, the same however Alexa spaced it.
    #[test]
    fn digits_are_a_code_padded_to_six(digits in "[0-9]{1,6}", pad in " {0,3}") {
        let code = SpokenCode::parse(&format!("{pad}{digits}{pad}")).unwrap();
        prop_assert_eq!(code.as_str().len(), 6);
        prop_assert!(code.as_str().ends_with(&digits));
        prop_assert!(code.as_str()[..6 - digits.len()].bytes().all(|b| b == b'0'));
        // Reading what was read changes nothing.
        prop_assert_eq!(SpokenCode::parse(code.as_str()), Some(code.clone()));
    }

    /// Anything else is no code: never a guess that could approve something.
    #[test]
    fn anything_else_is_no_code(spoken in "\\PC{0,12}") {
        let trimmed = spoken.trim();
        let digits = !trimmed.is_empty()
            && trimmed.len() <= 6
            && trimmed.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(SpokenCode::parse(&spoken).is_some(), digits);
    }

    /// The digest is the parameters: the same operation always has the same one, and
    /// changing what would run (action, account, region, instance) changes it, while the
    /// names people hear do not.
    #[test]
    fn the_digest_pins_what_would_run(a in instance_operation(), b in instance_operation()) {
        prop_assert_eq!(a.digest(), a.clone().digest());
        prop_assert_eq!(a.digest().len(), 64);
        let same_target = a.action == b.action
            && a.account_id == b.account_id
            && a.region == b.region
            && a.instance_id == b.instance_id;
        prop_assert_eq!(a.digest() == b.digest(), same_target);
        let renamed = InstanceOperation {
            account_name: b.account_name.clone(),
            instance_name: b.instance_name.clone(),
            ..a.clone()
        };
        prop_assert_eq!(renamed.digest(), a.digest());
    }

    /// What is stored reads back as the same operation, with the same digest and summary.
    #[test]
    fn stored_operations_read_back_unchanged(op in instance_operation()) {
        let operation = Operation::Instance(op);
        let read = Operation::from_stored(
            voxgate::ops::instances::KIND,
            operation.to_stored(),
        )
        .unwrap();
        prop_assert_eq!(read.digest(), operation.digest());
        prop_assert_eq!(read.summary(), operation.summary());
    }

    /// The summary says what will happen to which instance where, in words (never the
    /// instance id), on one line.
    #[test]
    fn the_summary_reads_as_a_sentence(op in instance_operation()) {
        let summary = op.summary();
        prop_assert!(summary.starts_with(op.action.verb()));
        prop_assert!(summary.contains(&op.instance_name));
        let place = format!(" in {}, ", op.account_name);
        prop_assert!(summary.contains(&place));
        prop_assert!(!summary.contains(&op.instance_id));
        prop_assert!(!summary.contains('\n'));
        prop_assert!(!summary.contains(&op.region), "a region people know is said by name: {}", summary);
    }
}
