//! INTERFACE (to be implemented): the Pipedrive client (API v2 persons, v1 fields).

use chrono::Utc;
use crmsync_entity::enums::{ConnectorKind, CrmModule};

use super::{
    ConnectionCheck, CrmClient, CrmError, CrmField, CrmUser, ListQuery, RecordPage, RecordWrite,
    WriteResult,
};
use crate::credentials::Credentials;

/// A Pipedrive company.
#[derive(Debug)]
pub struct PipedriveClient {}

impl PipedriveClient {
    /// A client for the credentials' company; `base_url` replaces `https://{company}.pipedrive.com`.
    pub fn new(
        _credentials: &Credentials,
        _base_url: Option<&str>,
        _http: reqwest::Client,
    ) -> Result<Self, CrmError> {
        todo!("worker issue 3")
    }
}

#[async_trait::async_trait]
impl CrmClient for PipedriveClient {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Pipedrive
    }
    async fn check(&self, _filter_field: Option<&str>) -> Result<ConnectionCheck, CrmError> {
        todo!()
    }
    async fn fields(&self, _module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        todo!()
    }
    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        todo!()
    }
    async fn list(&self, _query: &ListQuery) -> Result<RecordPage, CrmError> {
        let _ = Utc::now();
        todo!()
    }
    async fn write(
        &self,
        _module: CrmModule,
        _writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        todo!()
    }
}
