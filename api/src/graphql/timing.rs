//! Times each GraphQL request (parse, validation and execution) into the
//! process's metrics, by operation type. Subscriptions over the WebSocket are
//! streams, not requests: they are not timed.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};
use crmsync_worker::metrics::{Metrics, OperationKind};

/// The extension factory: one [`RequestTiming`] per request.
pub(crate) struct Timing(pub(crate) Metrics);

impl ExtensionFactory for Timing {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestTiming {
            metrics: self.0.clone(),
            operation_name: Mutex::new(None),
            operation: Mutex::new(OperationKind::Invalid),
        })
    }
}

struct RequestTiming {
    metrics: Metrics,
    /// The operation the request names, if any.
    operation_name: Mutex<Option<String>>,
    /// The operation's type; `Invalid` until the document parses and holds it.
    operation: Mutex<OperationKind>,
}

fn kind(ty: OperationType) -> OperationKind {
    match ty {
        OperationType::Query => OperationKind::Query,
        OperationType::Mutation => OperationKind::Mutation,
        OperationType::Subscription => OperationKind::Subscription,
    }
}

#[async_trait::async_trait]
impl Extension for RequestTiming {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let operation = *self.operation.lock().expect("not poisoned");
        self.metrics.graphql_request(operation, started.elapsed());
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        *self.operation_name.lock().expect("not poisoned") = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        // Known before validation, so a request that fails it is still labelled.
        let ty = match &document.operations {
            DocumentOperations::Single(op) => Some(op.node.ty),
            DocumentOperations::Multiple(ops) => {
                let name = self.operation_name.lock().expect("not poisoned").clone();
                name.and_then(|n| ops.get(n.as_str())).map(|op| op.node.ty)
            }
        };
        if let Some(ty) = ty {
            *self.operation.lock().expect("not poisoned") = kind(ty);
        }
        Ok(document)
    }
}
