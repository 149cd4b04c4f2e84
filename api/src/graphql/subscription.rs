//! Subscriptions: run progress from the event bus, filtered to the tenant (T3).

use async_graphql::{Context, ID, Subscription};
use futures::{Stream, StreamExt};

use super::types::SyncProgressEvent;
use super::{reader, state};
use crate::error::GqlError;
use crate::{connectors, runs};

pub(crate) struct Subscription;

#[Subscription]
impl Subscription {
    /// Progress of one run, from its current state to its final status; completes after the final event.
    async fn sync_progress(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = SyncProgressEvent> + use<>> {
        let scope = reader(ctx).map_err(gql)?;
        let state = state(ctx);
        // Subscribe before reading the run, so no event falls between the two.
        let live = state.bus.subscribe(scope.tenant.as_str());
        let run = runs::find(state, &scope.tenant, &run_id)
            .await
            .map_err(|e| gql(e.into()))?;
        let current = crmsync_worker::events::SyncEvent::of_run(&run);
        let done = current.status.is_final();
        let run_id = run.id.clone();
        let live = live.filter(move |e| futures::future::ready(e.run_id == run_id));
        // Ends right after the final event, without waiting for another one.
        let live =
            futures::stream::unfold((live.boxed(), done), |(mut events, finished)| async move {
                if finished {
                    return None;
                }
                let event = events.next().await?;
                let finished = event.status.is_final();
                Some((event, (events, finished)))
            });
        let first = futures::stream::once(futures::future::ready(current));
        let rest = if done {
            futures::stream::empty().boxed()
        } else {
            live.boxed()
        };
        Ok(first.chain(rest).map(SyncProgressEvent::from))
    }

    /// Every run event of the tenant (optionally of one connector): for dashboards.
    async fn sync_events(
        &self,
        ctx: &Context<'_>,
        connector_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = SyncProgressEvent> + use<>> {
        let scope = reader(ctx).map_err(gql)?;
        let state = state(ctx);
        if let Some(id) = &connector_id {
            connectors::find(state, &scope.tenant, id)
                .await
                .map_err(|e| gql(e.into()))?;
        }
        let connector_id = connector_id.map(|id| id.0);
        Ok(state
            .bus
            .subscribe(scope.tenant.as_str())
            .filter(move |e| {
                futures::future::ready(connector_id.as_ref().is_none_or(|c| *c == e.connector_id))
            })
            .map(SyncProgressEvent::from))
    }
}

/// Subscriptions must return `async_graphql::Result`; errors still go through `ApiError`.
fn gql(error: GqlError) -> async_graphql::Error {
    error.into()
}
