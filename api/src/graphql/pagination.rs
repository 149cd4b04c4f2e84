//! Relay pagination: opaque cursors over ULID primary keys, `totalCount`.
//!
//! A cursor is `c2:<table>:<ULID>` in unpadded URL-safe base64: the table
//! names the list it came from, so a cursor is refused by any other list, and
//! anything that does not decode to this exact form is refused as well.

use async_graphql::Object;
use async_graphql::connection::{Connection, Edge};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, Order,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement,
};

use crate::error::{ApiError, GqlResult};

/// Page size when `first` is left out.
pub(crate) const DEFAULT_PAGE: i32 = 50;
/// The largest page.
pub(crate) const MAX_PAGE: i32 = 100;

/// The extra field of every connection. The count runs only when a query
/// selects it: a page of a list of a million rows is read through an index
/// in a few milliseconds, but counting the whole list reads all of it.
pub(crate) struct TotalCount {
    db: DatabaseConnection,
    count: Statement,
}

#[Object]
impl TotalCount {
    /// How many items the whole list holds (all pages). Counted when asked,
    /// over the whole list: leave it out of queries that page through long
    /// lists (a run's million items) and only need the next page.
    async fn total_count(&self) -> GqlResult<i64> {
        let row = self.db.query_one_raw(self.count.clone()).await?;
        Ok(match row {
            Some(row) => row.try_get::<i64>("", "n")?,
            None => 0,
        })
    }
}

/// A connection of `N` nodes with `totalCount`.
pub(crate) type Conn<N> = Connection<String, N, TotalCount>;

/// What a page query returned.
pub(crate) struct Page<M> {
    /// The table listed, which the page's cursors carry.
    pub(crate) kind: &'static str,
    pub(crate) items: Vec<M>,
    pub(crate) has_next: bool,
    pub(crate) has_previous: bool,
    /// The whole list's count, run if `totalCount` is selected.
    pub(crate) count: TotalCount,
}

/// The version tag that starts every cursor.
const CURSOR_TAG: &str = "c2";

/// The opaque cursor of row `id` in a list of `kind` (its table).
pub(crate) fn encode_cursor(kind: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}:{kind}:{id}"))
}

/// The row id in `cursor`, when it is a cursor of a list of `kind`.
fn decode_cursor(kind: &str, cursor: &str) -> Result<String, ApiError> {
    let refused = || {
        ApiError::validation(
            "after",
            "is not a cursor of this list: pass an endCursor or edge cursor this list returned",
        )
    };
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(refused)?;
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(CURSOR_TAG), Some(k), Some(id))
            if k == kind && ulid::Ulid::from_string(id).is_ok_and(|u| u.to_string() == id) =>
        {
            Ok(id.to_owned())
        }
        _ => Err(refused()),
    }
}

/// One page of `select`, ordered by `id_column` (newest first when `newest_first`).
pub(crate) async fn page<E>(
    db: &DatabaseConnection,
    select: Select<E>,
    id_column: E::Column,
    first: Option<i32>,
    after: Option<String>,
    newest_first: bool,
) -> Result<Page<E::Model>, ApiError>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Sized + Send + Sync,
{
    let first = first.unwrap_or(DEFAULT_PAGE);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(ApiError::validation(
            "first",
            format!("must be between 0 and {MAX_PAGE}"),
        ));
    }
    let kind = E::default().table_name();
    let after = after
        .as_deref()
        .map(|c| decode_cursor(kind, c))
        .transpose()?;
    let count = TotalCount {
        db: db.clone(),
        count: select
            .clone()
            .select_only()
            .column_as(Expr::cust("COUNT(*)"), "n")
            .build(db.get_database_backend()),
    };
    let mut query = select;
    if let Some(after) = &after {
        query = if newest_first {
            query.filter(id_column.lt(after.as_str()))
        } else {
            query.filter(id_column.gt(after.as_str()))
        };
    }
    let order = if newest_first {
        Order::Desc
    } else {
        Order::Asc
    };
    let mut items = query
        .order_by(id_column, order)
        .limit(u64::try_from(first).unwrap_or(0) + 1)
        .all(db)
        .await?;
    let has_next = items.len() > usize::try_from(first).unwrap_or(0);
    items.truncate(usize::try_from(first).unwrap_or(0));
    Ok(Page {
        kind,
        items,
        has_next,
        has_previous: after.is_some(),
        count,
    })
}

/// A page as a Relay connection.
pub(crate) fn connection<M, N: async_graphql::OutputType>(
    page: Page<M>,
    id_of: impl Fn(&M) -> &str,
    node: impl Fn(M) -> N,
) -> Conn<N> {
    let mut conn = Connection::with_additional_fields(page.has_previous, page.has_next, page.count);
    let kind = page.kind;
    conn.edges.extend(
        page.items
            .into_iter()
            .map(|m| Edge::new(encode_cursor(kind, id_of(&m)), node(m))),
    );
    conn
}
