//! Session policies: the inline policy sent with AssumeRole, so that a session can do only
//! what one operation needs even if the customer's role allows more.

use serde_json::{Value, json};

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Statement {
    /// IAM actions, e.g. `ec2:DescribeInstances`.
    pub actions: Vec<String>,
    /// Resource ARNs, or `*` for actions without resource-level permissions.
    pub resources: Vec<String>,
    /// `StringEquals` conditions (key, value), e.g. `aws:ResourceTag/voxgate:managed`.
    pub string_equals: Vec<(String, String)>,
}

/// An inline session policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionPolicy {
    statements: Vec<Statement>,
}

impl SessionPolicy {
    /// Allows `actions` on `resources`.
    pub fn allow(actions: &[&str], resources: &[&str]) -> Self {
        Self {
            statements: vec![Statement {
                actions: actions.iter().map(|a| (*a).to_owned()).collect(),
                resources: resources.iter().map(|r| (*r).to_owned()).collect(),
                string_equals: Vec::new(),
            }],
        }
    }

    /// Allows `actions` on `resources` only while they carry the tag `key`=`value`
    /// (`aws:ResourceTag/KEY`), checked by IAM at the moment of the call.
    pub fn allow_tagged(actions: &[&str], resources: &[&str], key: &str, value: &str) -> Self {
        let mut policy = Self::allow(actions, resources);
        for statement in &mut policy.statements {
            statement
                .string_equals
                .push((format!("aws:ResourceTag/{key}"), value.to_owned()));
        }
        policy
    }

    /// A policy that allows nothing (yet); see [`SessionPolicy::and`].
    pub fn empty() -> Self {
        Self {
            statements: Vec::new(),
        }
    }

    /// This policy with the statements of `other` added.
    pub fn and(mut self, other: Self) -> Self {
        self.statements.extend(other.statements);
        self
    }

    /// The statements.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The policy document, as sent to STS.
    pub fn to_json(&self) -> String {
        let statements: Vec<Value> = self
            .statements
            .iter()
            .map(|s| {
                let mut statement = json!({
                    "Effect": "Allow",
                    "Action": s.actions,
                    "Resource": s.resources,
                });
                if !s.string_equals.is_empty() {
                    let equals: serde_json::Map<String, Value> = s
                        .string_equals
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    statement["Condition"] = json!({ "StringEquals": equals });
                }
                statement
            })
            .collect();
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_iam_policy_document() {
        let policy = SessionPolicy::allow(&["ec2:DescribeInstances"], &["*"]);
        let doc: Value = serde_json::from_str(&policy.to_json()).expect("json");
        assert_eq!(
            doc,
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": ["*"]}
            ]})
        );
    }
}
