//! A CRM account's users as record owners (S9): read by id, written by
//! e-mail. Shared by the clients whose records name their owner by user id.

use std::collections::HashMap;

use super::CrmUser;

/// An e-mail as users and records are matched by: the platform's normal
/// form where it parses, else trimmed and lower-cased.
pub(crate) fn normalise_email(raw: &str) -> String {
    crmsync_entity::Email::parse(raw)
        .map(|e| e.into_string())
        .unwrap_or_else(|_| raw.trim().to_lowercase())
}

/// Owners by id and by e-mail.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    /// Every owner, active and archived.
    pub list: Vec<CrmUser>,
    by_id: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
}

impl Owners {
    /// Builds the lookups; an active owner wins over an archived one of the same e-mail.
    pub(crate) fn new(list: Vec<CrmUser>) -> Self {
        let mut by_email = HashMap::new();
        for pass in [false, true] {
            for (i, u) in list.iter().enumerate().filter(|(_, u)| u.active == pass) {
                if !u.email.is_empty() {
                    by_email.insert(u.email.clone(), i);
                }
            }
        }
        Self {
            by_id: list
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.clone(), i))
                .collect(),
            by_email,
            list,
        }
    }

    /// The owner's e-mail of an owner id.
    pub(crate) fn email_of(&self, id: &str) -> Option<&str> {
        self.by_id
            .get(id)
            .map(|i| self.list[*i].email.as_str())
            .filter(|e| !e.is_empty())
    }

    /// The id of the active owner with this e-mail.
    pub(crate) fn active_id(&self, email: &str) -> Option<&str> {
        self.by_email
            .get(&normalise_email(email))
            .map(|i| &self.list[*i])
            .filter(|u| u.active)
            .map(|u| u.id.as_str())
    }
}
