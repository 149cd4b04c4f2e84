//! One module per table. Tenant-owned tables implement [`crate::TenantScoped`].

pub mod api_key;
pub mod audit_log;
pub mod connector;
pub mod consent_event;
pub mod contact;
pub mod crm_deletion;
pub mod crm_link;
pub mod crm_notice;
pub mod crm_record;
pub mod delivery;
pub mod field_mapping;
pub mod idempotency_key;
pub mod pending_push;
pub mod process_lease;
pub mod realtime_subscription;
pub mod run_listed_ids;
pub mod sync_checkpoint;
pub mod sync_item;
pub mod sync_rule;
pub mod sync_run;
pub mod tenant;
pub mod tenant_slot;
pub mod webhook;

/// Implements `TenantScoped` for an entity with `tenant_id` and `id` columns.
macro_rules! tenant_scoped {
    ($entity:ty, $column:ty) => {
        impl $crate::TenantScoped for $entity {
            fn tenant_column() -> $column {
                <$column>::TenantId
            }
            fn id_column() -> $column {
                <$column>::Id
            }
        }
    };
}
pub(crate) use tenant_scoped;
