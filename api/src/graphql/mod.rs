//! The GraphQL schema: types, resolvers (thin: check, call a service, map),
//! loaders and pagination.

use async_graphql::{Context, Schema};
use crmsync_entity::TenantId;
use crmsync_entity::enums::Role;

use crate::ApiState;
use crate::audit::Actor;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorMasking, GqlResult};

mod connector_inputs;
mod crm_calls;
mod input_rules;
mod inputs;
pub(crate) mod loaders;
mod mutation;
pub(crate) mod pagination;
mod query;
mod subscription;
mod timing;
mod types;

pub(crate) use loaders::Loaders;

/// The schema type.
pub(crate) type ApiSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Query depth limit.
pub(crate) const MAX_DEPTH: usize = 12;
/// Query complexity limit (each field counts 1; connections count per `first`).
pub(crate) const MAX_COMPLEXITY: usize = 1_000;
/// Directives per field.
pub(crate) const MAX_DIRECTIVES: usize = 8;
/// Nesting of input values and fragments.
pub(crate) const MAX_RECURSIVE_DEPTH: usize = 24;

/// Builds the schema; `state` is `None` for SDL export.
pub(crate) fn build(state: Option<ApiState>) -> ApiSchema {
    let mut builder = Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .extension(ErrorMasking)
        .extension(input_rules::InputRules)
        .extension(crm_calls::CrmCallLimit)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(MAX_DIRECTIVES)
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH);
    if let Some(state) = state {
        builder = builder
            .extension(timing::Timing(state.metrics.clone()))
            .data(state);
    }
    builder.finish()
}

/// Who is calling, as request (or WebSocket connection) data.
#[derive(Debug, Clone)]
pub(crate) struct Auth(pub(crate) Option<Principal>);

/// A tenant role's view of a request.
pub(crate) struct Scope {
    pub(crate) tenant: TenantId,
    pub(crate) actor: Actor,
    pub(crate) via_api_key: bool,
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a ApiState {
    ctx.data_unchecked::<ApiState>()
}

pub(crate) fn principal<'a>(ctx: &Context<'a>) -> GqlResult<&'a Principal> {
    ctx.data_opt::<Auth>()
        .and_then(|a| a.0.as_ref())
        .ok_or_else(|| {
            ApiError::Unauthenticated("send `Authorization: Bearer <token or API key>`".into())
                .into()
        })
}

pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> GqlResult<&'a Loaders> {
    ctx.data_opt::<Loaders>()
        .ok_or_else(|| ApiError::Internal("loaders missing from request data".into()).into())
}

/// ADMIN or VIEWER of a tenant.
pub(crate) fn reader(ctx: &Context<'_>) -> GqlResult<Scope> {
    let p = principal(ctx)?;
    let tenant = p.tenant_id().ok_or_else(|| {
        ApiError::Forbidden("operators act on tenants, not within one: use a tenant's token".into())
    })?;
    Ok(Scope {
        tenant,
        actor: Actor(p.subject.clone()),
        via_api_key: p.subject.starts_with("apikey:"),
    })
}

/// ADMIN of a tenant: VIEWERs read only.
pub(crate) fn admin(ctx: &Context<'_>) -> GqlResult<Scope> {
    let scope = reader(ctx)?;
    if principal(ctx)?.role != Role::Admin {
        return Err(
            ApiError::Forbidden("this needs the ADMIN role; VIEWERs can only read".into()).into(),
        );
    }
    Ok(scope)
}

/// A platform operator.
pub(crate) fn operator(ctx: &Context<'_>) -> GqlResult<()> {
    if principal(ctx)?.role != Role::Operator {
        return Err(ApiError::Forbidden("this needs the OPERATOR role".into()).into());
    }
    Ok(())
}
