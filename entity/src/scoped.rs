//! Tenant-scoped finders: the only way to read a tenant-owned table.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Select};

use crate::TenantId;

/// A table whose rows belong to a tenant.
pub trait TenantScoped: EntityTrait {
    /// The `tenant_id` column.
    fn tenant_column() -> Self::Column;

    /// The primary-key column (a ULID string).
    fn id_column() -> Self::Column;

    /// All rows of the tenant.
    fn for_tenant(tenant: &TenantId) -> Select<Self> {
        Self::find().filter(Self::tenant_column().eq(tenant.as_str()))
    }

    /// One row by id, only if it belongs to the tenant.
    fn find_for_tenant(tenant: &TenantId, id: &str) -> Select<Self> {
        Self::for_tenant(tenant).filter(Self::id_column().eq(id))
    }
}
