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
            env: Vec::new(),
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
            cmd.env(k, v);
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

on_both_backends!(tenants_users_and_accounts);
async fn tenants_users_and_accounts(backend: Backend) {
    let mut op = Operator::new(backend).await;
    let tenant = op.ok(&["tenant", "add", "acme", "--json"]).json();
    assert_eq!(tenant["name"], "acme");
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
        .map(|t| t["name"].clone())
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
    assert_eq!(user["name"], "alice");
    assert_eq!(user["alexa_user_id"], "amzn1.ask.account.ALICE");

    op.env.push((
        "VOXGATE_ROLE_TEMPLATE_URL".to_owned(),
        "https://templates.example.com/voxgate/customer-role.yaml".to_owned(),
    ));
    op.env
        .push(("VOXGATE_TRUSTED_ACCOUNT_ID".into(), "999988887777".into()));
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
    assert_eq!(linked["account"]["name"], "prod");
    assert_eq!(
        linked["template_parameters"]["ExternalId"],
        external_id.as_str()
    );
    assert_eq!(
        linked["template_parameters"]["VoxgateAccountId"],
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

    // Listing shows no secrets, and the database holds none in plain text.
    let list = op.ok(&["account", "list", "--json"]).stdout;
    assert!(list.contains("prod") && list.contains("aws-3333"), "{list}");
    assert!(
        !list.contains(&external_id) && !list.contains(ARN),
        "{list}"
    );
    let text = op.ok(&["account", "list"]).stdout;
    assert!(
        !text.contains(&external_id) && !text.contains("111122223333"),
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

    op.refused(
        &["tenant", "add", "ACME"],
        "a tenant named 'ACME' already exists",
    );
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
            "eu-west-1",
            "--name",
            "PROD",
        ],
        "already has an account named 'PROD'",
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
        "already exists",
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
        "already exists",
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
    op.env = vec![
        ("AWS_ENDPOINT_URL".into(), MOTO.clone()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("VOXGATE_KMS_KEY_ID".into(), key_id.clone()),
    ];
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
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(local.db.dir.path().join("voxgate.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // KMS unreachable: a clear error, nothing written.
    let mut broken = Operator::new(Backend::Sqlite).await;
    broken.ok(&["tenant", "add", "acme"]);
    broken.env = vec![
        ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_MAX_ATTEMPTS".into(), "1".into()),
        ("VOXGATE_KMS_KEY_ID".into(), key_id),
    ];
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
        "could not seal",
    );
}

#[test]
fn every_operator_command_has_help_and_takes_a_database_url() {
    for args in [
        vec!["tenant", "add"],
        vec!["tenant", "list"],
        vec!["account", "link"],
        vec!["account", "list"],
        vec!["user", "add"],
        vec!["user", "list"],
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
        ],
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
