//! The string enums stored in the database. Stored values equal the GraphQL enum
//! names (`ZOHO_CRM`, `QUEUED`, ...), so a row reads the same in SQL and in the API.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[sea_orm(string_value = $value)]
                #[serde(rename = $value)]
                $variant,
            )+
        }

        impl $name {
            /// The stored (and GraphQL) name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $value,)+ }
            }

            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($value => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Who may do what (T2).
    Role {
        /// Creates tenants; the platform's own operators.
        Operator = "OPERATOR",
        /// Configures one tenant.
        Admin = "ADMIN",
        /// Reads one tenant.
        Viewer = "VIEWER",
    }
);

string_enum!(
    /// The CRM behind a connector (C1).
    ConnectorKind {
        /// Zoho CRM, API v8.
        ZohoCrm = "ZOHO_CRM",
        /// Pipedrive, API v2.
        Pipedrive = "PIPEDRIVE",
        /// HubSpot, CRM API v3.
        Hubspot = "HUBSPOT",
        /// Salesforce, the REST API.
        Salesforce = "SALESFORCE",
        /// Zendesk Sell, API v2.
        ZendeskSell = "ZENDESK_SELL",
        /// SAP Sales Cloud (C4C), OData v2.
        SapC4c = "SAP_C4C",
    }
);

string_enum!(
    /// A connector's health (C4).
    ConnectorStatus {
        /// Credentials work.
        Connected = "CONNECTED",
        /// The CRM refused the stored credentials; a person must re-authorise.
        NeedsReauth = "NEEDS_REAUTH",
        /// The last attempt failed for another reason.
        Error = "ERROR",
        /// Switched off by the tenant.
        Disabled = "DISABLED",
    }
);

string_enum!(
    /// A CRM module that holds people.
    CrmModule {
        /// Leads (Zoho).
        Leads = "LEADS",
        /// Contacts (Zoho, HubSpot).
        Contacts = "CONTACTS",
        /// Pipedrive persons.
        Persons = "PERSONS",
        /// Individual customers: people who buy for themselves (B2C), kept
        /// apart from the contacts of corporate accounts (SAP C4C's
        /// `IndividualCustomerCollection`).
        Customers = "CUSTOMERS",
    }
);

string_enum!(
    /// A leg of a sync run.
    SyncDirection {
        /// Platform to CRM.
        ToCrm = "TO_CRM",
        /// CRM to platform.
        FromCrm = "FROM_CRM",
    }
);

string_enum!(
    /// Which way a mapped field flows (F1).
    MappingDirection {
        /// Platform to CRM only.
        ToCrm = "TO_CRM",
        /// CRM to platform only.
        FromCrm = "FROM_CRM",
        /// Both ways.
        Both = "BOTH",
    }
);

string_enum!(
    /// What started a run (R1).
    SyncTrigger {
        /// The connector's schedule.
        Schedule = "SCHEDULE",
        /// A person, through the API.
        Manual = "MANUAL",
        /// A form submission.
        Form = "FORM",
        /// A partner's automation.
        Api = "API",
        /// Change notifications from the CRM (real time): the records they
        /// named, read from the CRM.
        CrmEvent = "CRM_EVENT",
    }
);

string_enum!(
    /// The health of a connector's real-time subscription to its CRM's
    /// change notifications. A subscription row stores ACTIVE or DEGRADED;
    /// OFF and UNSUPPORTED are what a connector without one shows.
    RealtimeState {
        /// Subscribed: the CRM notifies changes within seconds.
        Active = "ACTIVE",
        /// Wanted but not working (refused, deleted by the CRM, silent):
        /// polling carries the sync, and crmsync subscribes again.
        Degraded = "DEGRADED",
        /// Turned off, or the connector is disabled: polling only.
        Off = "OFF",
        /// The CRM offers no change notifications crmsync can use: polling only.
        Unsupported = "UNSUPPORTED",
    }
);

string_enum!(
    /// How much a run reads and whether it writes (R1).
    SyncMode {
        /// Changes since the checkpoints.
        Incremental = "INCREMENTAL",
        /// Everything, ignoring checkpoints.
        Full = "FULL",
        /// Computes and records, writes nothing.
        DryRun = "DRY_RUN",
    }
);

string_enum!(
    /// Where a run is (R1).
    SyncRunStatus {
        /// Waiting for a worker.
        Queued = "QUEUED",
        /// A worker runs it.
        Running = "RUNNING",
        /// Done, nothing rejected.
        Succeeded = "SUCCEEDED",
        /// Done, some contacts rejected or a limit reached.
        Partial = "PARTIAL",
        /// Stopped by an error.
        Failed = "FAILED",
        /// Stopped on request.
        Cancelled = "CANCELLED",
    }
);

impl SyncRunStatus {
    /// True once the run can no longer change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Partial | Self::Failed | Self::Cancelled
        )
    }
}

string_enum!(
    /// What a run did to one contact (R2).
    ItemOutcome {
        /// Created on the target side.
        Created = "CREATED",
        /// Updated on the target side.
        Updated = "UPDATED",
        /// Nothing to do.
        Unchanged = "UNCHANGED",
        /// Refused, with a reason.
        Rejected = "REJECTED",
        /// Changed on both sides; the newer side won.
        Conflict = "CONFLICT",
        /// The CRM record was deleted: its link is removed (S12).
        Deleted = "DELETED",
    }
);

string_enum!(
    /// A platform contact's lifecycle (S10).
    Lifecycle {
        /// Not yet a customer: a lead in the CRM.
        Prospect = "PROSPECT",
        /// A customer: a contact in the CRM.
        Client = "CLIENT",
    }
);

string_enum!(
    /// Where a delivery of the notifications outbox stands (R5).
    DeliveryStatus {
        /// Waiting for its next attempt (or being attempted now).
        Pending = "PENDING",
        /// The receiver accepted it.
        Delivered = "DELIVERED",
        /// Given up: every attempt failed, or one failed for good.
        Failed = "FAILED",
    }
);

string_enum!(
    /// How a delivery of the notifications outbox is sent (R5).
    DeliveryChannel {
        /// A signed POST to a partner's webhook.
        Webhook = "WEBHOOK",
        /// A run summary e-mail to a connector's notification addresses.
        Email = "EMAIL",
    }
);

string_enum!(
    /// Where a change of a contact's opt-out state came from (S9).
    ConsentOrigin {
        /// The platform itself: the API, contact upserts and imports.
        Platform = "PLATFORM",
        /// A CRM, through a connector's sync run.
        Crm = "CRM",
    }
);
