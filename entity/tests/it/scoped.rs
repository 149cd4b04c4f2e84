//! Tenant-scoped finders never return another tenant's rows; the schema's unique
//! keys hold on both backends.

use chrono::Utc;
use crmsync_entity::enums::Lifecycle;
use crmsync_entity::models::{contact, tenant};
use crmsync_entity::testing::TestDatabase;
use crmsync_entity::{Email, TenantId, TenantScoped, new_id};
use sea_orm::{ActiveModelTrait, PaginatorTrait, Set};

async fn tenant(db: &sea_orm::DatabaseConnection, slug: &str) -> TenantId {
    let id = new_id();
    tenant::ActiveModel {
        id: Set(id.clone()),
        name: Set(slug.to_uppercase()),
        slug: Set(slug.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    TenantId::new(id)
}

async fn contact(
    db: &sea_orm::DatabaseConnection,
    tenant: &TenantId,
    email: &str,
) -> Result<String, sea_orm::DbErr> {
    let id = new_id();
    contact::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.to_string()),
        email: Set(Email::parse(email).unwrap().into_string()),
        first_name: Set(Some("Éloïse".into())),
        last_name: Set(None),
        company: Set(None),
        phone: Set(None),
        job_title: Set(None),
        source: Set(None),
        behaviour_score: Set(10),
        state: Set(None),
        lifecycle: Set(Lifecycle::Prospect),
        opted_out: Set(false),
        owner_email: Set(None),
        custom_fields: Set(serde_json::json!({"industry": "Software"})),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
        archived_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(id)
}

#[tokio::test]
async fn a_tenant_never_finds_another_tenants_contact() {
    let t = TestDatabase::new().await;
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    let id = contact(&t.db, &acme, "a@acme.com").await.unwrap();

    assert!(
        contact::Entity::find_for_tenant(&acme, &id)
            .one(&t.db)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        contact::Entity::find_for_tenant(&globex, &id)
            .one(&t.db)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        contact::Entity::for_tenant(&globex)
            .count(&t.db)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn one_email_per_tenant_but_the_same_email_in_two_tenants() {
    let t = TestDatabase::new().await;
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    contact(&t.db, &acme, "Same@Example.com").await.unwrap();
    assert!(
        contact(&t.db, &acme, " same@example.com ").await.is_err(),
        "unique per tenant, case-insensitively"
    );
    contact(&t.db, &globex, "same@example.com").await.unwrap();
}

#[tokio::test]
async fn json_and_enum_columns_round_trip() {
    let t = TestDatabase::new().await;
    let acme = tenant(&t.db, "acme").await;
    let id = contact(&t.db, &acme, "j@acme.com").await.unwrap();
    let row = contact::Entity::find_for_tenant(&acme, &id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.custom_fields["industry"], "Software");
    assert_eq!(row.lifecycle, Lifecycle::Prospect);
    assert_eq!(row.first_name.as_deref(), Some("Éloïse"));
}
