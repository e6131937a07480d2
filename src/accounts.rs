//! Linking a customer's AWS account to a tenant: a fresh ExternalId, role ARN and
//! ExternalId sealed under the tenant's encryption context, stored. Shared by the CLI and
//! anything else that links accounts, so the sealing steps exist once.

use crate::cloud::arn::{ExternalId, Region, RoleArn};
use crate::cloud::seal::{Purpose, SealContext, SealError, Sealer};
use crate::store::{
    AccountId, AccountName, InvalidInput, LinkedAccount, NewAccount, Store, StoreError, Tenant,
};

/// Why linking failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// Sealing failed (KMS unreachable, key file unusable).
    #[error("could not seal the account's secrets: {0}")]
    Seal(#[from] SealError),
    /// The store refused (duplicate) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A linked account and the ExternalId the customer must put in their role's trust policy.
#[derive(Debug)]
pub struct Linked {
    /// The stored account (secrets sealed).
    pub account: LinkedAccount,
    /// The ExternalId, to show the operator once.
    pub external_id: ExternalId,
}

/// Links `role_arn` to `tenant` under `name`, with default region `region`.
pub async fn link(
    store: &dyn Store,
    sealer: &Sealer,
    tenant: &Tenant,
    name: &AccountName,
    role_arn: &RoleArn,
    region: &Region,
    now: i64,
) -> Result<Linked, LinkError> {
    let external_id = ExternalId::generate()?;
    let tenant_key = tenant.id.as_str();
    let id = AccountId::generate();
    let account = NewAccount {
        id: id.clone(),
        tenant_id: tenant.id.clone(),
        name: name.clone(),
        region: region.as_str().to_owned(),
        role_arn: sealer
            .seal(
                role_arn.as_str().as_bytes(),
                &SealContext::new(tenant_key, Purpose::RoleArn, id.as_str()),
            )
            .await?,
        external_id: sealer
            .seal(
                external_id.expose().as_bytes(),
                &SealContext::new(tenant_key, Purpose::ExternalId, id.as_str()),
            )
            .await?,
        external_id_digest: external_id.digest(),
    };
    let account = store.add_account(&account, now).await?;
    Ok(Linked {
        account,
        external_id,
    })
}
