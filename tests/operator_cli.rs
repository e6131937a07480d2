//! The operator's commands as an operator runs them: the `voxgate` binary against a fresh
//! SQLite file or PostgreSQL database, with moto behind AWS for KMS.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::process::Command;

use common::aws::{MOTO, sdk_config};
use common::{Backend, TestDb};
use serde_json::Value;

struct Operator {
    db: TestDb,
    env: Vec<(String, String)>,
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

impl Operator {
    async fn new(backend: Backend) -> Self {
        Self {
            db: TestDb::new(backend).await,
            env: vec![("VOXGATE_TRUSTED_ACCOUNT_ID".into(), TRUSTED.into())],
        }
    }

    fn run(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
        for (key, _) in std::env::vars() {
            if key.starts_with("VOXGATE_") || key.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(self.db.dir.path())
            .args(args)
            .env("VOXGATE_DATABASE_URL", &self.db.url)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "eu-west-1");
        for (k, v) in &self.env {
            // An empty value stands for "not set".
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().unwrap();
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Outcome {
        let out = self.run(args);
        assert_eq!(
            out.code, 0,
            "voxgate {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out
    }

    /// Runs a command that must fail, and checks it said `needle` and wrote nothing.
    fn refused(&self, args: &[&str], needle: &str) {
        let before = self.snapshot();
        let out = self.run(args);
        assert_ne!(out.code, 0, "voxgate {args:?} should fail:\n{}", out.stdout);
        assert!(
            out.stderr.contains(needle),
            "voxgate {args:?}: expected '{needle}' in:\n{}",
            out.stderr
        );
        assert_eq!(self.snapshot(), before, "voxgate {args:?} wrote something");
    }

    fn snapshot(&self) -> (Value, Value, Value) {
        (
            self.ok(&["tenant", "list", "--json"]).json(),
            self.ok(&["account", "list", "--json"]).json(),
            self.ok(&["user", "list", "--json"]).json(),
        )
    }
}

const ARN: &str = "arn:aws:iam::111122223333:role/voxgate-access";
/// voxgate's own AWS account, which customers' roles trust.
const TRUSTED: &str = "999988887777";

on_both_backends!(tenants_users_and_accounts);
async fn tenants_users_and_accounts(backend: Backend) {
    let mut op = Operator::new(backend).await;
    let tenant = op.ok(&["tenant", "add", "acme", "--json"]).json();
    assert_eq!(tenant["tenant"], "acme");
    assert!(tenant["id"].as_str().unwrap().starts_with("t_"));
    assert!(
        op.ok(&["tenant", "add", "Globex"])
            .stdout
            .contains("Added tenant 'Globex'")
    );
    let names: Vec<Value> = op
        .ok(&["tenant", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].clone())
        .collect();
    assert_eq!(names, vec![Value::from("acme"), Value::from("Globex")]);

    let user = op
        .ok(&[
            "user",
            "add",
            "--tenant",
            "ACME",
            "--name",
            "alice",
            "--alexa-user-id",
            "amzn1.ask.account.ALICE",
            "--json",
        ])
        .json();
    assert_eq!(user["user"], "alice");
    assert_eq!(user["tenant"], "acme");
    assert_eq!(user["tenant_id"], tenant["id"]);
    assert_eq!(user["alexa_user_id"], "amzn1.ask.account.ALICE");

    op.env.push((
        "VOXGATE_ROLE_TEMPLATE_URL".to_owned(),
        "https://templates.example.com/voxgate/customer-role.yaml".to_owned(),
    ));
    let linked = op
        .ok(&[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            ARN,
            "--region",
            "eu-west-1",
            "--name",
            "prod",
            "--json",
        ])
        .json();
    let external_id = linked["external_id"].as_str().unwrap().to_owned();
    assert!(external_id.len() >= 32, "{external_id}");
    assert_eq!(linked["account"], "prod");
    assert_eq!(linked["tenant"], "acme");
    assert_eq!(linked["aws_account_id"], "111122223333");
    assert!(linked["id"].as_str().unwrap().starts_with("a_"));
    assert_eq!(
        linked["template_parameters"]["ExternalId"],
        external_id.as_str()
    );
    assert_eq!(
        linked["template_parameters"]["VoxgatePrincipal"],
        "999988887777"
    );
    assert_eq!(linked["template_parameters"]["RoleName"], "voxgate-access");
    assert_eq!(linked["template_parameters"]["RolePath"], "/");
    let url = url::Url::parse(linked["quick_create_url"].as_str().unwrap()).unwrap();
    assert_eq!(url.host_str(), Some("console.aws.amazon.com"));
    let fragment = url.fragment().unwrap();
    assert!(fragment.starts_with("/stacks/quickcreate?"), "{fragment}");
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(fragment.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert!(params.contains(&("param_ExternalId".into(), external_id.clone())));
    assert!(params.contains(&(
        "templateURL".into(),
        "https://templates.example.com/voxgate/customer-role.yaml".into()
    )));
    assert!(
        linked["cli_command"]
            .as_str()
            .unwrap()
            .contains("deploy/customer-role.yaml")
    );

    // A second account gets its own ExternalId.
    let second = op
        .ok(&[
            "account",
            "link",
            "--tenant",
            "globex",
            "--role-arn",
            ARN,
            "--region",
            "us-east-1",
        ])
        .stdout;
    assert!(second.contains("Linked account 'aws-3333'"), "{second}");
    assert!(!second.contains(&external_id));

    // Listing shows the AWS account id (opened from the sealed role ARN) but no secrets, and
    // the database holds none in plain text, the account id included.
    let list = op.ok(&["account", "list", "--json"]).stdout;
    assert!(list.contains("prod") && list.contains("aws-3333"), "{list}");
    assert!(
        !list.contains(&external_id) && !list.contains(ARN),
        "{list}"
    );
    let text = op.ok(&["account", "list"]).stdout;
    assert!(!text.contains(&external_id), "{text}");
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("TENANT") && header.contains("AWS ACCOUNT") && header.contains("REGION"),
        "{text}"
    );
    let prod = text.lines().find(|l| l.contains("prod")).unwrap();
    assert!(
        prod.contains("acme") && prod.contains("111122223333") && prod.contains("eu-west-1"),
        "{text}"
    );
    let bytes = op.db.all_bytes().await;
    for secret in [external_id.as_bytes(), ARN.as_bytes(), b"111122223333"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{} found in the database",
            String::from_utf8_lossy(secret)
        );
    }
}

on_both_backends!(bad_input_is_refused_and_writes_nothing);
async fn bad_input_is_refused_and_writes_nothing(backend: Backend) {
    let op = Operator::new(backend).await;
    op.ok(&["tenant", "add", "acme"]);
    op.ok(&[
        "account",
        "link",
        "--tenant",
        "acme",
        "--role-arn",
        ARN,
        "--region",
        "eu-west-1",
        "--name",
        "prod",
    ]);
    op.ok(&[
        "user",
        "add",
        "--tenant",
        "acme",
        "--name",
        "alice",
        "--alexa-user-id",
        "amzn1.ask.account.ALICE",
    ]);

    op.refused(&["tenant", "add", "ACME"], "tenant 'acme' already exists");
    op.refused(&["tenant", "add", "bad/name"], "is not a valid tenant name");
    op.refused(
        &[
            "account",
            "link",
            "--tenant",
            "nobody",
            "--role-arn",
            ARN,
            "--region",
            "eu-west-1",
        ],
        "there is no tenant named 'nobody'",
    );
    op.refused(
        &[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            "arn:aws:iam::1234:role/x",
            "--region",
            "eu-west-1",
        ],
        "is not an IAM role ARN",
    );
    op.refused(
        &[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            ARN,
            "--region",
            "Ireland",
        ],
        "is not an AWS region code",
    );
    op.refused(
        &[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            ARN,
            "--region",
            "eu-west-9",
        ],
        "'eu-west-9' is not an AWS region voxgate knows",
    );
    op.refused(
        &[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            ARN,
            "--region",
            "eu-west-1",
            "--name",
            "PROD",
        ],
        "tenant 'acme' already has an account named 'prod' (linked ",
    );
    op.refused(
        &[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            ARN,
            "--region",
            "eu-west-1",
            "--trusted-account-id",
            "12",
        ],
        "is not an AWS account id",
    );
    op.refused(
        &["user", "add", "--tenant", "acme", "--name", "bob"],
        "--alexa-user-id",
    );
    op.refused(
        &[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            "bob",
            "--alexa-user-id",
            "bob",
        ],
        "is not an Alexa user id",
    );
    op.refused(
        &[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            "Alice",
            "--alexa-user-id",
            "amzn1.ask.account.OTHER",
        ],
        "tenant 'acme' already has a user named 'alice'",
    );
    op.refused(
        &[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            "bob",
            "--alexa-user-id",
            "amzn1.ask.account.ALICE",
        ],
        "that Alexa user id is already enrolled as 'alice'",
    );
    op.refused(
        &[
            "user",
            "add",
            "--tenant",
            "nobody",
            "--name",
            "bob",
            "--alexa-user-id",
            "amzn1.ask.account.BOB",
        ],
        "there is no tenant named 'nobody'",
    );
}

#[tokio::test]
async fn a_bad_database_url_says_what_to_set() {
    let op = Operator::new(Backend::Sqlite).await;
    let out = op.run(&["tenant", "list", "--database-url", "mysql://x"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("VOXGATE_DATABASE_URL"),
        "{}",
        out.stderr
    );
    let out = op.run(&[
        "tenant",
        "list",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/x",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("cannot open the database"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn linking_with_kms_seals_under_the_kms_key() {
    let kms = aws_sdk_kms::Client::new(&sdk_config(&MOTO));
    let key_id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let mut op = Operator::new(Backend::Sqlite).await;
    op.env.extend([
        ("AWS_ENDPOINT_URL".into(), MOTO.clone()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("VOXGATE_KMS_KEY_ID".into(), key_id.clone()),
    ]);
    op.ok(&["tenant", "add", "acme"]);
    let out = op.ok(&[
        "account",
        "link",
        "--tenant",
        "acme",
        "--role-arn",
        ARN,
        "--region",
        "eu-west-1",
        "--json",
    ]);
    assert!(
        !out.stderr.contains("LOCAL KEY FILE"),
        "no development warning with KMS:\n{}",
        out.stderr
    );
    assert!(
        !op.db.dir.path().join("voxgate.key").exists(),
        "no local key file with KMS"
    );

    // Without KMS the same command warns loudly and creates a private key file.
    let local = Operator::new(Backend::Sqlite).await;
    local.ok(&["tenant", "add", "acme"]);
    let out = local.ok(&[
        "account",
        "link",
        "--tenant",
        "acme",
        "--role-arn",
        ARN,
        "--region",
        "eu-west-1",
    ]);
    assert!(out.stderr.contains("LOCAL KEY FILE"), "{}", out.stderr);
    assert!(
        !out.stderr.contains(" WARN "),
        "one plain warning, no log lines:\n{}",
        out.stderr
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(local.db.dir.path().join("voxgate.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // KMS unreachable: a clear error, nothing written.
    let mut broken = Operator::new(Backend::Sqlite).await;
    broken.env.extend([
        ("AWS_ENDPOINT_URL".into(), MOTO.clone()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_MAX_ATTEMPTS".into(), "1".into()),
        ("VOXGATE_KMS_KEY_ID".into(), key_id),
    ]);
    broken.ok(&["tenant", "add", "acme"]);
    broken.env[1].1 = "http://127.0.0.1:9".into();
    broken.refused(
        &[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            ARN,
            "--region",
            "eu-west-1",
        ],
        "KMS: could not be reached",
    );
}

#[test]
fn every_operator_command_has_help_and_takes_a_database_url() {
    for args in [
        vec!["tenant", "add"],
        vec!["tenant", "list"],
        vec!["tenant", "remove"],
        vec!["account", "link"],
        vec!["account", "list"],
        vec!["account", "show"],
        vec!["account", "check"],
        vec!["account", "unlink"],
        vec!["user", "add"],
        vec!["user", "list"],
        vec!["user", "remove"],
        vec!["device", "list"],
        vec!["device", "revoke"],
        vec!["pair"],
    ] {
        let mut full = args.clone();
        full.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
            .args(&full)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(
            help.contains("--database-url") && help.contains("VOXGATE_DATABASE_URL"),
            "{args:?}:\n{help}"
        );
        assert!(help.contains("--json"), "{args:?}:\n{help}");
    }
}

/// Commands that read (or change what must already exist) never create a database: in an
/// empty directory they say which database they looked for, and leave nothing behind.
#[test]
fn reading_commands_in_an_empty_directory_create_nothing() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        vec!["tenant", "list"],
        vec!["user", "list"],
        vec!["account", "list"],
        vec!["device", "list"],
        vec!["audit", "verify"],
        vec![
            "account",
            "link",
            "--tenant",
            "acme",
            "--name",
            "prod",
            "--role-arn",
            "arn:aws:iam::111122223333:role/voxgate-access",
            "--region",
            "eu-west-1",
            "--trusted-account-id",
            "999988887777",
        ],
        vec![
            "account",
            "show",
            "prod",
            "--trusted-account-id",
            "999988887777",
        ],
        vec!["account", "check", "prod"],
        vec!["account", "unlink", "prod"],
        vec!["user", "remove", "alice"],
        vec!["tenant", "remove", "acme", "--force"],
        vec!["pair", "--user", "alice"],
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
        for (key, _) in std::env::vars() {
            if key.starts_with("VOXGATE_") || key.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .current_dir(empty.path())
            .args(&args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "eu-west-1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains("there is no voxgate database at voxgate.db"),
            "{args:?}: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(empty.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

/// A pending challenge of `user` on `account`, as the gate would hold it.
async fn hold_operation(url: &str, tenant: &str, user: &str, account: &str) -> String {
    let store = voxgate::store::connect(url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let id = format!("c_test{}", rand_suffix());
    tx.insert_challenge(&voxgate::store::ChallengeRow {
        id: id.clone(),
        tenant_id: tenant.into(),
        user_id: user.into(),
        account_id: account.into(),
        operation: "{}".into(),
        summary: "Stop instance web-1".into(),
        digest: "00".into(),
        state: "pending".into(),
        created_at: 0,
        expires_at: i64::MAX,
        wrong_codes: 0,
        used_step: None,
        closed_at: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn end_operation(url: &str, id: &str) {
    let store = voxgate::store::connect(url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.move_challenge(id, &["pending"], "expired", 1)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}

/// A time printed to the second: `2026-11-24 21:13:11 UTC` in text, RFC 3339 in JSON.
fn printed_to_the_second(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(22)).any(|i| {
        let s = &text[i..i + 23];
        s.len() == 23
            && s[..4].chars().all(|c| c.is_ascii_digit())
            && &s[4..5] == "-"
            && &s[10..11] == " "
            && &s[13..14] == ":"
            && &s[16..17] == ":"
            && s.ends_with(" UTC")
    })
}

on_both_backends!(removing_what_was_added);
async fn removing_what_was_added(backend: Backend) {
    let op = Operator::new(backend).await;
    let tenant = op.ok(&["tenant", "add", "acme", "--json"]).json();
    let user = op
        .ok(&[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            "alice",
            "--alexa-user-id",
            "amzn1.ask.account.ALICE",
            "--json",
        ])
        .json();
    let linked = op
        .ok(&[
            "account",
            "link",
            "--tenant",
            "acme",
            "--role-arn",
            ARN,
            "--region",
            "eu-west-1",
            "--name",
            "prod",
            "--json",
        ])
        .json();
    let external_id = linked["external_id"].as_str().unwrap().to_owned();

    // --verbose names the database; tables have headers and times to the second.
    let listed = op.ok(&["--verbose", "tenant", "list"]);
    let expected = match backend {
        Backend::Sqlite => "using the SQLite database /",
        Backend::Postgres => "using the PostgreSQL database postgres://",
    };
    assert!(listed.stderr.contains(expected), "{}", listed.stderr);
    assert!(listed.stdout.starts_with("TENANT "), "{}", listed.stdout);
    assert!(printed_to_the_second(&listed.stdout), "{}", listed.stdout);
    let users = op.ok(&["user", "list"]).stdout;
    assert!(users.starts_with("TENANT "), "{users}");
    let alice = users.lines().find(|l| l.contains("alice")).unwrap();
    assert!(alice.starts_with("acme "), "{users}");
    let json_time = tenant["created_at"].as_str().unwrap();
    assert!(
        json_time.len() == 20 && json_time.ends_with('Z'),
        "{json_time}"
    );

    // `account show` prints the customer's parameters again, and that is audited.
    let shown = op.ok(&["account", "show", "prod", "--json"]).json();
    assert_eq!(shown["external_id"], external_id.as_str());
    assert_eq!(shown["template_parameters"], linked["template_parameters"]);
    assert_eq!(shown["role_arn"], ARN);
    let shown_text = op.ok(&["account", "show", "PROD"]).stdout;
    assert!(shown_text.contains(&external_id), "{shown_text}");
    assert!(shown_text.contains("ParameterKey=VoxgatePrincipal,ParameterValue=999988887777"));
    op.refused(
        &["account", "show", "prod", "--trusted-account-id", ""],
        "--trusted-account-id",
    );

    // While an operation waits for its code, nothing it needs can be removed.
    let held = hold_operation(
        &op.db.url,
        tenant["id"].as_str().unwrap(),
        user["id"].as_str().unwrap(),
        linked["id"].as_str().unwrap(),
    )
    .await;
    op.refused(
        &["account", "unlink", "prod"],
        "waiting for a code or running",
    );
    op.refused(
        &["user", "remove", "alice"],
        "waiting for a code or running",
    );
    op.refused(
        &["tenant", "remove", "acme", "--force"],
        "waiting for a code or running",
    );
    op.refused(
        &["tenant", "remove", "acme"],
        "tenant 'acme' still has 1 user and 1 account",
    );
    end_operation(&op.db.url, &held).await;

    // Removed users are forgotten: the same Alexa user id can be enrolled again.
    let removed = op.ok(&["user", "remove", "alice"]).stdout;
    assert!(
        removed.contains("Removed user 'alice' of tenant 'acme'"),
        "{removed}"
    );
    assert!(!op.ok(&["user", "list"]).stdout.contains("alice"));
    op.refused(&["user", "remove", "alice"], "there is no user 'alice'");
    op.ok(&[
        "user",
        "add",
        "--tenant",
        "acme",
        "--name",
        "alice",
        "--alexa-user-id",
        "amzn1.ask.account.ALICE",
    ]);

    // Unlinked accounts are gone from the list, their name free again.
    let unlinked = op.ok(&["account", "unlink", "prod"]).stdout;
    assert!(unlinked.contains("Unlinked account 'prod'"), "{unlinked}");
    assert!(!op.ok(&["account", "list"]).stdout.contains("prod"));
    op.refused(
        &["account", "show", "prod"],
        "there is no linked account 'prod'",
    );
    op.ok(&[
        "account",
        "link",
        "--tenant",
        "acme",
        "--role-arn",
        ARN,
        "--region",
        "eu-west-1",
        "--name",
        "prod",
    ]);

    // A tenant goes with --force, its users and accounts with it.
    let gone = op.ok(&["tenant", "remove", "acme", "--force"]).stdout;
    assert!(
        gone.contains("Removed tenant 'acme' with its 1 user and 1 account"),
        "{gone}"
    );
    assert_eq!(
        op.ok(&["tenant", "list", "--json"]).json(),
        Value::Array(vec![])
    );
    assert_eq!(
        op.ok(&["user", "list", "--json"]).json(),
        Value::Array(vec![])
    );
    assert_eq!(
        op.ok(&["account", "list", "--json"]).json(),
        Value::Array(vec![])
    );
    op.ok(&["tenant", "add", "acme"]);

    // Every change is in the audit log, by the operator, and the chain verifies.
    op.ok(&["audit", "verify"]);
    let exported = op.ok(&["audit", "export"]).stdout;
    let records: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "tenant-added",
            "user-enrolled",
            "account-linked",
            "account-shown",
            "account-shown",
            "user-removed",
            "user-enrolled",
            "account-unlinked",
            "account-linked",
            "account-unlinked",
            "user-removed",
            "tenant-removed",
            "tenant-added",
        ]
    );
    assert!(records.iter().all(|r| r["actor"] == "operator"));
    assert!(!exported.contains(&external_id));
}

#[tokio::test]
async fn checking_a_link_assumes_the_role_and_reports_what_it_may_do() {
    let mut op = Operator::new(Backend::Sqlite).await;
    op.ok(&["tenant", "add", "acme"]);
    op.env.extend([
        ("AWS_ENDPOINT_URL".into(), MOTO.clone()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
    ]);
    // moto does not enforce IAM: the role may do everything, terminating included, and the
    // check says that this is more than voxgate needs.
    let out = op.run(&[
        "account",
        "link",
        "--tenant",
        "acme",
        "--role-arn",
        ARN,
        "--region",
        "eu-west-1",
        "--name",
        "prod",
        "--check",
    ]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("voxgate assumed the role of 'prod'"),
        "{}",
        out.stdout
    );
    let line = |what: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no '{what}' in {}", out.stdout))
            .to_owned()
    };
    assert!(line("see EC2 instances").contains("allowed"));
    assert!(line("see EC2 instances").ends_with("ok"));
    assert!(line("read the IAM password policy").ends_with("ok"));
    assert!(
        line("terminate instances").contains("the role allows more than voxgate needs"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("is not set up as voxgate needs"),
        "{}",
        out.stderr
    );
    // The link itself is kept: the customer can fix the role and check again.
    let report = op.run(&["account", "check", "prod", "--json"]);
    assert_ne!(report.code, 0);
    let report = report.json();
    assert_eq!(report["assumed"], true);
    assert_eq!(report["account"], "prod");
    assert_eq!(report["aws_account_id"], "111122223333");
    let audited = op.ok(&["audit", "export"]).stdout;
    assert_eq!(
        audited.matches("\"account-checked\"").count(),
        2,
        "each check is audited: {audited}"
    );

    // STS unreachable: said in one line, nothing else tried.
    op.env[1].1 = "http://127.0.0.1:9".into();
    op.env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let out = op.run(&["account", "check", "prod"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stdout
            .contains("voxgate could not assume the role of 'prod'"),
        "{}",
        out.stdout
    );
}

/// Over TLS when the URL asks for it (as deploy/service.yaml's does for RDS): a client built
/// without TLS would refuse `sslmode=require`, and PostgreSQL says the session is encrypted.
#[tokio::test]
async fn postgresql_may_be_required_to_use_tls() {
    let op = Operator::new(Backend::Postgres).await;
    let separator = if op.db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}sslmode=require", op.db.url);
    op.ok(&["tenant", "add", "acme", "--database-url", &url]);
    let listed = op.ok(&["tenant", "list", "--database-url", &url]).stdout;
    assert!(listed.contains("acme"), "{listed}");
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert!(encrypted, "the session is encrypted");
}
