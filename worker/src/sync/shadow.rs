//! A dry run's writes to the database, kept in memory instead: the CRM-side
//! e-mail index, links with their snapshots, and the contacts the import leg
//! would create or update. The run's later reads (the next page, the next
//! module, the export leg) go through [`Run`]'s finders here, which lay these
//! over what the database holds, so a dry run meets what the real run would
//! meet (a contact created two pages earlier, a duplicate already linked, a
//! record to match by e-mail) and lists what the real run would do.
//!
//! **Invariant:** a dry run writes nothing but its run row and its items; the
//! shadow dies with the run. A dry run taken over by another worker starts
//! again from the start (its items are dropped), with an empty shadow.

use std::collections::{BTreeSet, HashMap};

use crmsync_entity::enums::CrmModule;
use crmsync_entity::models::{contact, crm_link, crm_record};
use sea_orm::DbErr;

use super::{Run, store};

/// What a dry run would have written, by the keys the run reads it by.
#[derive(Debug, Default)]
pub(crate) struct Shadow {
    /// Index rows by (module, CRM record id).
    index: HashMap<(CrmModule, String), crm_record::Model>,
    /// CRM record ids by (module, normalised e-mail).
    index_by_email: HashMap<(CrmModule, String), BTreeSet<String>>,
    /// Links by id.
    links: HashMap<String, crm_link::Model>,
    /// Link ids by (module, CRM record id).
    link_by_record: HashMap<(CrmModule, String), String>,
    /// Link ids by contact id.
    link_by_contact: HashMap<String, String>,
    /// Contacts by id.
    contacts: HashMap<String, contact::Model>,
    /// Contact ids by e-mail.
    contact_by_email: HashMap<String, String>,
}

impl Shadow {
    /// Upserts index rows, as `store::upsert_crm_records` would.
    pub fn put_index(&mut self, rows: Vec<crm_record::Model>) {
        for row in rows {
            let key = (row.module, row.crm_record_id.clone());
            if let Some(old) = self.index.get(&key)
                && let Some(email) = &old.email
                && let Some(ids) = self.index_by_email.get_mut(&(row.module, email.clone()))
            {
                ids.remove(&row.crm_record_id);
            }
            if let Some(email) = &row.email {
                self.index_by_email
                    .entry((row.module, email.clone()))
                    .or_default()
                    .insert(row.crm_record_id.clone());
            }
            self.index.insert(key, row);
        }
    }

    /// Upserts links by id, as `store::upsert_links` would (a link keeps its contact).
    pub fn put_links(&mut self, rows: Vec<crm_link::Model>) {
        for mut row in rows {
            if let Some(old) = self.links.get(&row.id) {
                self.link_by_record
                    .remove(&(old.module, old.crm_record_id.clone()));
                row.contact_id = old.contact_id.clone();
            }
            self.link_by_record
                .insert((row.module, row.crm_record_id.clone()), row.id.clone());
            self.link_by_contact
                .insert(row.contact_id.clone(), row.id.clone());
            self.links.insert(row.id.clone(), row);
        }
    }

    /// A contact as it would be stored, created or updated.
    pub fn put_contact(&mut self, contact: contact::Model) {
        if let Some(old) = self.contacts.get(&contact.id)
            && old.email != contact.email
        {
            self.contact_by_email.remove(&old.email);
        }
        self.contact_by_email
            .insert(contact.email.clone(), contact.id.clone());
        self.contacts.insert(contact.id.clone(), contact);
    }

    /// Rows read from the database, without those the shadow replaces, and
    /// the shadow's rows for the keys asked.
    fn overlay<T: Clone>(
        &self,
        found: Vec<T>,
        replaced: impl Fn(&T) -> bool,
        mine: impl Iterator<Item = T>,
        id: impl Fn(&T) -> String,
    ) -> Vec<T> {
        let mut out: Vec<T> = found.into_iter().filter(|r| !replaced(r)).collect();
        let mut seen: BTreeSet<String> = out.iter().map(&id).collect();
        out.extend(mine.filter(|r| seen.insert(id(r))));
        out
    }

    fn links_by_records(
        &self,
        found: Vec<crm_link::Model>,
        module: CrmModule,
        ids: &[String],
    ) -> Vec<crm_link::Model> {
        let mine = ids
            .iter()
            .filter_map(|id| self.link_by_record.get(&(module, id.clone())))
            .filter_map(|id| self.links.get(id))
            .cloned();
        self.overlay(
            found,
            |l| self.links.contains_key(&l.id),
            mine,
            |l| l.id.clone(),
        )
    }

    fn links_by_contacts(
        &self,
        found: Vec<crm_link::Model>,
        ids: &[String],
    ) -> Vec<crm_link::Model> {
        let mine = ids
            .iter()
            .filter_map(|id| self.link_by_contact.get(id))
            .filter_map(|id| self.links.get(id))
            .cloned();
        self.overlay(
            found,
            |l| self.links.contains_key(&l.id),
            mine,
            |l| l.id.clone(),
        )
    }

    fn contacts(
        &self,
        found: Vec<contact::Model>,
        ids: &[String],
        emails: &[String],
    ) -> Vec<contact::Model> {
        let mine = ids
            .iter()
            .chain(emails.iter().filter_map(|e| self.contact_by_email.get(e)))
            .filter_map(|id| self.contacts.get(id))
            .cloned();
        self.overlay(
            found,
            |c| self.contacts.contains_key(&c.id),
            mine,
            |c| c.id.clone(),
        )
    }

    fn crm_records_by_email(
        &self,
        found: Vec<crm_record::Model>,
        module: CrmModule,
        emails: &[String],
    ) -> Vec<crm_record::Model> {
        let mine = emails
            .iter()
            .filter_map(|e| self.index_by_email.get(&(module, e.clone())))
            .flatten()
            .filter_map(|id| self.index.get(&(module, id.clone())))
            .cloned();
        self.overlay(
            found,
            |r| {
                self.index
                    .contains_key(&(r.module, r.crm_record_id.clone()))
            },
            mine,
            |r| r.crm_record_id.clone(),
        )
    }
}

/// The run's reads of what pages write: the database's rows, with a dry
/// run's shadow laid over them. Keys are cloned only for a dry run.
impl Run<'_> {
    /// Links of these CRM records.
    pub(crate) async fn links_by_records(
        &self,
        module: CrmModule,
        ids: Vec<String>,
    ) -> Result<Vec<crm_link::Model>, DbErr> {
        let asked = self.shadow.as_ref().map(|_| ids.clone());
        let found =
            store::links_by_records(&self.ctx.db, &self.tenant, &self.connector.id, module, ids)
                .await?;
        Ok(match (&self.shadow, asked) {
            (Some(shadow), Some(ids)) => shadow.links_by_records(found, module, &ids),
            _ => found,
        })
    }

    /// Links of these contacts.
    pub(crate) async fn links_by_contacts(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<crm_link::Model>, DbErr> {
        let asked = self.shadow.as_ref().map(|_| ids.clone());
        let found =
            store::links_by_contacts(&self.ctx.db, &self.tenant, &self.connector.id, ids).await?;
        Ok(match (&self.shadow, asked) {
            (Some(shadow), Some(ids)) => shadow.links_by_contacts(found, &ids),
            _ => found,
        })
    }

    /// Contacts by id or e-mail.
    pub(crate) async fn contacts(
        &self,
        ids: Vec<String>,
        emails: Vec<String>,
    ) -> Result<Vec<contact::Model>, DbErr> {
        let asked = self.shadow.as_ref().map(|_| (ids.clone(), emails.clone()));
        let found = store::contacts(&self.ctx.db, &self.tenant, ids, emails).await?;
        Ok(match (&self.shadow, asked) {
            (Some(shadow), Some((ids, emails))) => shadow.contacts(found, &ids, &emails),
            _ => found,
        })
    }

    /// CRM records of one module (from the index) with these e-mails.
    pub(crate) async fn crm_records_by_email(
        &self,
        module: CrmModule,
        emails: Vec<String>,
    ) -> Result<Vec<crm_record::Model>, DbErr> {
        let asked = self.shadow.as_ref().map(|_| emails.clone());
        let found = store::crm_records_by_email(
            &self.ctx.db,
            &self.tenant,
            &self.connector.id,
            module,
            emails,
        )
        .await?;
        Ok(match (&self.shadow, asked) {
            (Some(shadow), Some(emails)) => shadow.crm_records_by_email(found, module, &emails),
            _ => found,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use crmsync_entity::enums::Lifecycle;
    use serde_json::json;

    use super::*;

    fn record(id: &str, email: &str) -> crm_record::Model {
        crm_record::Model {
            tenant_id: "t".into(),
            connector_id: "c".into(),
            module: CrmModule::Persons,
            crm_record_id: id.into(),
            email: Some(email.into()),
            modified_at: Utc::now(),
        }
    }

    fn contact(id: &str, email: &str) -> contact::Model {
        contact::Model {
            id: id.into(),
            tenant_id: "t".into(),
            email: email.into(),
            first_name: None,
            last_name: None,
            company: None,
            phone: None,
            job_title: None,
            source: None,
            behaviour_score: 0,
            state: None,
            lifecycle: Lifecycle::Prospect,
            opted_out: false,
            owner_email: None,
            custom_fields: json!({}),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            archived_at: None,
        }
    }

    #[test]
    fn an_index_row_moved_to_another_email_is_found_by_the_new_one_only() {
        let mut shadow = Shadow::default();
        shadow.put_index(vec![record("1", "old@x.com")]);
        shadow.put_index(vec![record("1", "new@x.com")]);
        let stored = vec![record("1", "old@x.com"), record("2", "old@x.com")];
        let old = shadow.crm_records_by_email(stored, CrmModule::Persons, &["old@x.com".into()]);
        assert_eq!(
            old.iter()
                .map(|r| r.crm_record_id.as_str())
                .collect::<Vec<_>>(),
            ["2"]
        );
        let new =
            shadow.crm_records_by_email(Vec::new(), CrmModule::Persons, &["new@x.com".into()]);
        assert_eq!(new.len(), 1);
    }

    #[test]
    fn shadow_contacts_replace_stored_ones_and_are_found_by_email() {
        let mut shadow = Shadow::default();
        shadow.put_contact(contact("a", "renamed@x.com"));
        shadow.put_contact(contact("b", "new@x.com"));
        let stored = vec![contact("a", "before@x.com")];
        let found = shadow.contacts(stored, &["a".into()], &["new@x.com".into()]);
        let emails: Vec<_> = found.iter().map(|c| c.email.as_str()).collect();
        assert_eq!(emails, ["renamed@x.com", "new@x.com"]);
    }
}
