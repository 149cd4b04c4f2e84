//! `POST /$batch`: a multipart/mixed body of retrieve operations and
//! changesets. Each changeset is atomic: when one of its operations fails, the
//! ones before it are rolled back and the changeset answers with that one
//! error. The batch answers 202 with one part per retrieve and one multipart
//! part per successful changeset.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::api::{Undo, admitted, execute, roll_back};
use super::{SERVICE_PATH, Tenant, check_csrf, odata_error};
use crate::{AppState, Shared};

/// One operation of a batch, as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operation {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A batch part: a lone retrieve, or a changeset of writes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Retrieve(Operation),
    Changeset(Vec<Operation>),
}

pub(crate) async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tenant = match admitted(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&state, &tenant, &headers) {
        return r;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(boundary) = boundary_of(content_type) else {
        return odata_error(
            400,
            "INVALID_BATCH",
            "Content-Type must be multipart/mixed with a boundary",
        );
    };
    let text = String::from_utf8_lossy(&body).replace("\r\n", "\n");
    let parts = match parse_parts(&text, &boundary) {
        Ok(p) => p,
        Err(m) => return odata_error(400, "INVALID_BATCH", &m),
    };
    let settings = tenant.data.lock().settings.clone();
    let total: usize = parts
        .iter()
        .map(|p| match p {
            Part::Retrieve(_) => 1,
            Part::Changeset(ops) => ops.len(),
        })
        .sum();
    if let Some(big) = parts.iter().find_map(|p| match p {
        Part::Changeset(ops) if ops.len() > settings.changeset_max => Some(ops.len()),
        _ => None,
    }) {
        return odata_error(
            400,
            "BATCH_LIMIT_EXCEEDED",
            &format!(
                "A changeset holds {big} operations; at most {} are allowed",
                settings.changeset_max
            ),
        );
    }
    if total > settings.batch_max {
        return odata_error(
            400,
            "BATCH_LIMIT_EXCEEDED",
            &format!(
                "The batch holds {total} operations; at most {} are allowed",
                settings.batch_max
            ),
        );
    }
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        out.push_str("--batchresponse\r\n");
        match part {
            Part::Retrieve(op) => {
                let response = run(&state, &tenant, op, None);
                out.push_str(&http_part(response).await);
            }
            Part::Changeset(ops) => out.push_str(&changeset(&state, &tenant, ops, i).await),
        }
    }
    out.push_str("--batchresponse--\r\n");
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(
            header::CONTENT_TYPE,
            "multipart/mixed; boundary=batchresponse",
        )
        .header("dataserviceversion", "2.0")
        .body(Body::from(out))
        .unwrap_or_default()
}

async fn changeset(state: &Shared, tenant: &Tenant, ops: &[Operation], i: usize) -> String {
    let mut undo: Undo = Vec::new();
    let mut replies = Vec::new();
    for op in ops {
        let response = run(state, tenant, op, Some(&mut undo));
        if !response.status().is_success() {
            roll_back(&mut tenant.data.lock(), undo);
            return http_part(response).await;
        }
        replies.push(response);
    }
    let boundary = format!("changesetresponse_{i}");
    let mut out = format!("Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n");
    for response in replies {
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str(&http_part(response).await);
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

fn run(state: &Shared, tenant: &Tenant, op: &Operation, undo: Option<&mut Undo>) -> Response {
    let Ok(method) = Method::from_bytes(op.method.as_bytes()) else {
        return odata_error(
            400,
            "INVALID_BATCH",
            &format!("Unknown method {}", op.method),
        );
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &op.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    execute(
        state,
        tenant,
        &method,
        &op.target,
        &headers,
        op.body.as_bytes(),
        undo,
    )
}

/// A response as an `application/http` part.
async fn http_part(response: Response) -> String {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut out =
        String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n");
    out.push_str(&format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    ));
    for (k, v) in &parts.headers {
        out.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.push_str(&String::from_utf8_lossy(&body));
    out.push_str("\r\n");
    out
}

/// The boundary parameter of a multipart/mixed content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The parts between `--boundary` lines, up to `--boundary--`.
fn split_multipart<'a>(text: &'a str, boundary: &str) -> Result<Vec<&'a str>, String> {
    let delimiter = format!("--{boundary}");
    let end = format!("--{boundary}--");
    let Some(close) = text.find(&end) else {
        return Err(format!("The closing delimiter {end} is missing"));
    };
    Ok(text[..close]
        .split(&delimiter)
        .skip(1)
        .map(|p| p.strip_prefix('\n').unwrap_or(p))
        .collect())
}

/// Headers (lower-cased names) and what follows the blank line.
fn headers_and_body(part: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = part.split_once("\n\n").unwrap_or((part, ""));
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (headers, body)
}

pub(crate) fn parse_parts(text: &str, boundary: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    for (i, raw) in split_multipart(text, boundary)?.into_iter().enumerate() {
        let (headers, body) = headers_and_body(raw);
        let content_type = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if let Some(inner) = boundary_of(content_type) {
            let ops = split_multipart(body, &inner)?
                .into_iter()
                .map(|p| operation(headers_and_body(p).1))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("part {}: {e}", i + 1))?;
            parts.push(Part::Changeset(ops));
        } else {
            let op = operation(body).map_err(|e| format!("part {}: {e}", i + 1))?;
            parts.push(Part::Retrieve(op));
        }
    }
    Ok(parts)
}

/// An `application/http` request: request line, headers, blank line, body.
fn operation(http: &str) -> Result<Operation, String> {
    let http = http.trim_start_matches('\n');
    let (line, rest) = http.split_once('\n').unwrap_or((http, ""));
    let mut words = line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(format!("invalid request line {line:?}"));
    };
    let (headers, body) = match rest.strip_prefix('\n') {
        Some(body) => (Vec::new(), body),
        None => headers_and_body(rest),
    };
    // The target is relative to the service root; absolute forms are accepted too.
    let target = match target.find(SERVICE_PATH) {
        Some(at) => &target[at + SERVICE_PATH.len()..],
        None => target,
    };
    Ok(Operation {
        method: method.to_ascii_uppercase(),
        target: target.trim_start_matches('/').to_owned(),
        headers,
        body: body.trim_end().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changeset_and_a_retrieve_parse() {
        let body = "--b1\nContent-Type: multipart/mixed; boundary=c1\n\n--c1\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\nPOST LeadCollection HTTP/1.1\nContent-Type: application/json\n\n{\"Name\":\"A\"}\n--c1--\n\n--b1\nContent-Type: application/http\n\nGET LeadCollection?$top=1 HTTP/1.1\nAccept: application/json\n\n\n--b1--\n";
        let parts = parse_parts(body, "b1").unwrap();
        assert_eq!(parts.len(), 2);
        let Part::Changeset(ops) = &parts[0] else {
            panic!("a changeset first")
        };
        assert_eq!(ops[0].method, "POST");
        assert_eq!(ops[0].target, "LeadCollection");
        assert_eq!(ops[0].body, "{\"Name\":\"A\"}");
        let Part::Retrieve(get) = &parts[1] else {
            panic!("a retrieve second")
        };
        assert_eq!(get.target, "LeadCollection?$top=1");
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/mixed;boundary=\"x y\"").as_deref(),
            Some("x y")
        );
        assert_eq!(boundary_of("application/json"), None);
    }
}
