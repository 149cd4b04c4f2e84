//! When each tenant was last given a slot (issue 26): the next slot goes to
//! the tenant with runs waiting that was served longest ago (round robin
//! between tenants), across every worker process. Scheduling data, read
//! across tenants like the queue; it holds no tenant content.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

/// A tenant's last slot.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_slots")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// When one of its runs last took a slot.
    pub last_slot_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The last slot of each tenant named that has had one.
pub async fn last_slots(
    db: &impl ConnectionTrait,
    tenants: &[String],
) -> Result<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>, DbErr> {
    if tenants.is_empty() {
        return Ok(Default::default());
    }
    Ok(Entity::find()
        .filter(Column::TenantId.is_in(tenants.iter().cloned()))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.tenant_id, s.last_slot_at))
        .collect())
}

/// Notes that the tenant takes a slot `at`. Inside a claim's transaction
/// this also holds the tenant's row (PostgreSQL) until it commits, so two
/// workers never both count the tenant's runs under its cap at once.
pub async fn take(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    Entity::insert(ActiveModel {
        tenant_id: sea_orm::ActiveValue::Set(tenant_id.to_owned()),
        last_slot_at: sea_orm::ActiveValue::Set(at),
    })
    .on_conflict(
        OnConflict::column(Column::TenantId)
            .update_column(Column::LastSlotAt)
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}
