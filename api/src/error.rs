//! The API's one error type, its stable codes, and the one place where errors
//! are masked before they reach a client.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest, NextSubscribe,
};
use async_graphql::{Request, Response, ServerError, ServerResult};
use crmsync_worker::crm::CrmError;
use crmsync_worker::crm::kit::ConnectError;
use crmsync_worker::runs::RunError;
use crmsync_worker::settings::FieldError;
use futures::StreamExt;
use futures::stream::BoxStream;

/// What went wrong, as a client may see it. `Internal` carries the cause for
/// the log only: it is replaced by a generic message before any response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that do not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing for this tenant (another tenant's ids are not found either).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An input a user can fix; `field` is the input path.
    #[error("{field}: {message}")]
    Validation {
        /// The input path, e.g. `input.settings.minScoreToExport`.
        field: String,
        /// Why, in words.
        message: String,
    },
    /// The request clashes with the current state (duplicate slug, final run, ...).
    #[error("{0}")]
    Conflict(String),
    /// A limit was reached; try later.
    #[error("{0}")]
    RateLimited(String),
    /// Anything else: logged with the request id, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// A validation failure at `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A validation failure from the worker's validators, whose paths are
    /// relative to `prefix` (e.g. `input.settings`).
    pub fn from_field_error(prefix: &str, error: FieldError) -> Self {
        Self::validation(format!("{prefix}.{}", error.field), error.message)
    }

    /// The stable `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation { .. } => "VALIDATION",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The HTTP status of a request refused at the edge, before it runs
    /// (errors from resolvers travel in a 200 GraphQL response).
    pub(crate) fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The one table from a CRM failure to what a client sees: causes that
    /// may hold URLs or raw replies become INTERNAL (masked).
    pub fn from_crm(error: CrmError) -> Self {
        match error {
            CrmError::RateLimited { .. } => {
                Self::RateLimited("the CRM is rate limiting us; try again shortly".into())
            }
            CrmError::DailyLimit(_) => {
                Self::RateLimited("the CRM's daily API limit is reached; try again tomorrow".into())
            }
            CrmError::Unauthorized(_) => Self::Conflict(
                "the CRM refused the connector's credentials: update them, then test the connector"
                    .into(),
            ),
            CrmError::Rejected { message, .. } => Self::Conflict(message),
            other @ (CrmError::Unavailable(_) | CrmError::Protocol(_)) => {
                Self::Internal(format!("CRM: {other}"))
            }
        }
    }

    /// A kit's refusal of a credentials form sent at `input` (e.g.
    /// `input.acme`): VALIDATION at the form's field at fault, or at `input`;
    /// a CRM failure on the way goes through [`ApiError::from_crm`].
    pub fn from_connect(error: ConnectError, input: &str) -> Self {
        match error {
            ConnectError::Invalid {
                field: Some(field),
                message,
            } => Self::validation(format!("{input}.{field}"), message),
            ConnectError::Invalid {
                field: None,
                message,
            } => Self::validation(input, message),
            ConnectError::Crm(e) => Self::from_crm(e),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Internal(format!("database: {error}"))
    }
}

impl From<RunError> for ApiError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::NotFound => Self::NotFound("sync run or connector"),
            RunError::Conflict(message) => Self::Conflict(message),
            RunError::Db(e) => e.into(),
            RunError::Queue(e) => Self::Internal(e.to_string()),
        }
    }
}

/// What resolvers return on failure. It deliberately has no `Display`, so the
/// blanket `From<T: Display> for async_graphql::Error` cannot apply: every
/// error reaches the client through [`ApiError`] and its code, and a stray `?`
/// on a foreign error does not compile.
#[derive(Debug, Clone)]
pub(crate) struct GqlError(pub(crate) ApiError);

/// The resolvers' result type.
pub(crate) type GqlResult<T> = Result<T, GqlError>;

impl From<ApiError> for GqlError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<sea_orm::DbErr> for GqlError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self(error.into())
    }
}

impl From<RunError> for GqlError {
    fn from(error: RunError) -> Self {
        Self(error.into())
    }
}

impl From<Arc<sea_orm::DbErr>> for GqlError {
    fn from(error: Arc<sea_orm::DbErr>) -> Self {
        Self(ApiError::Internal(format!("database: {error}")))
    }
}

impl From<GqlError> for async_graphql::Error {
    fn from(GqlError(error): GqlError) -> Self {
        let code = error.code();
        let mut out = match &error {
            ApiError::Validation { message, .. } => async_graphql::Error::new(message.clone()),
            other => async_graphql::Error::new(other.to_string()),
        };
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", code);
        if let ApiError::Validation { field, .. } = &error {
            ext.set("field", field.as_str());
        }
        out.extensions = Some(ext);
        out
    }
}

/// The request id a response carries (`extensions.requestId`, `x-request-id`).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The message every INTERNAL error shows.
pub(crate) const INTERNAL_MESSAGE: &str = "internal error; quote the request id to support";

/// Masks errors: the one place where internal detail is taken out of responses.
/// Errors from resolvers always carry a code; an error with a path and no known
/// code, or with code INTERNAL, is logged with the request id and replaced.
/// Every error gets the request id.
pub(crate) struct ErrorMasking;

impl ExtensionFactory for ErrorMasking {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorMaskingExtension::default())
    }
}

/// The key of `Request::extensions` under which the HTTP edge passes the
/// request id (request data is not visible to the `request` hook).
pub(crate) const REQUEST_ID_EXTENSION: &str = "crmsyncRequestId";

/// One instance per request.
#[derive(Default)]
struct ErrorMaskingExtension {
    request_id: std::sync::Mutex<Option<RequestId>>,
}

#[async_trait::async_trait]
impl Extension for ErrorMaskingExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(async_graphql::Value::String(id)) =
            request.extensions.remove(REQUEST_ID_EXTENSION)
        {
            *self.request_id.lock().expect("not poisoned") = Some(RequestId(id));
        }
        next.run(ctx, request).await
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let request_id = self
            .request_id
            .lock()
            .expect("not poisoned")
            .clone()
            .or_else(|| ctx.data_opt::<RequestId>().cloned());
        mask_errors(&mut response.errors, request_id.as_ref());
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let request_id = ctx.data_opt::<RequestId>().cloned();
        next.run(ctx, stream)
            .map(move |mut response| {
                mask_errors(&mut response.errors, request_id.as_ref());
                response
            })
            .boxed()
    }
}

const KNOWN_CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "VALIDATION",
    "CONFLICT",
    "RATE_LIMITED",
];

/// Replaces internal errors in place and stamps the request id on every error.
pub(crate) fn mask_errors(errors: &mut [ServerError], request_id: Option<&RequestId>) {
    let id = request_id.map_or("unknown", |r| r.0.as_str());
    for error in errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|v| match v {
                async_graphql::Value::String(s) => Some(s.clone()),
                _ => None,
            });
        let known = code.as_deref().is_some_and(|c| KNOWN_CODES.contains(&c));
        // Errors without a path come from parsing, validation or limits: they
        // describe the client's document, never our internals.
        let internal = !known && (code.is_some() || !error.path.is_empty());
        if internal {
            tracing::error!(request_id = id, cause = %error.message, "internal error");
            error.message = INTERNAL_MESSAGE.to_owned();
            error.source = None;
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", "INTERNAL");
            error.extensions = Some(ext);
        } else if code.is_none() {
            let ext = error.extensions.get_or_insert_with(Default::default);
            ext.set("code", "BAD_REQUEST");
        }
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("requestId", id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_crm_error_has_one_api_error() {
        let refused =
            "the CRM refused the connector's credentials: update them, then test the connector";
        let table = [
            (
                CrmError::RateLimited {
                    retry_after: Some(Duration::from_secs(1)),
                },
                "RATE_LIMITED",
                "the CRM is rate limiting us; try again shortly",
            ),
            (
                CrmError::DailyLimit("x".into()),
                "RATE_LIMITED",
                "the CRM's daily API limit is reached; try again tomorrow",
            ),
            (CrmError::Unauthorized("bad".into()), "CONFLICT", refused),
            (
                CrmError::Rejected {
                    code: "CRM_VALIDATION".into(),
                    field: Some("email".into()),
                    message: "no such value".into(),
                },
                "CONFLICT",
                "no such value",
            ),
            (
                CrmError::Unavailable("502 from https://crm.example".into()),
                "INTERNAL",
                "internal: CRM: the CRM is unavailable: 502 from https://crm.example",
            ),
            (
                CrmError::Protocol("raw reply".into()),
                "INTERNAL",
                "internal: CRM: unexpected reply from the CRM: raw reply",
            ),
        ];
        for (error, code, shown) in table {
            let case = format!("{error:?}");
            let api = ApiError::from_crm(error);
            assert_eq!(
                (api.code(), api.to_string().as_str()),
                (code, shown),
                "{case}"
            );
        }
    }

    #[test]
    fn a_refused_credentials_form_names_its_field_under_the_input() {
        let table = [
            (
                ConnectError::invalid("apiKey", "expired"),
                "VALIDATION",
                "input.acme.apiKey: expired",
            ),
            (
                ConnectError::Invalid {
                    field: None,
                    message: "refused".into(),
                },
                "VALIDATION",
                "input.acme: refused",
            ),
            (
                ConnectError::Crm(CrmError::DailyLimit("x".into())),
                "RATE_LIMITED",
                "the CRM's daily API limit is reached; try again tomorrow",
            ),
        ];
        for (error, code, shown) in table {
            let case = format!("{error:?}");
            let api = ApiError::from_connect(error, "input.acme");
            assert_eq!(
                (api.code(), api.to_string().as_str()),
                (code, shown),
                "{case}"
            );
        }
    }
}
