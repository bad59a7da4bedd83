//! Rules the whole OpenAPI document follows, applied once after every area's paths are merged
//! (see `app::openapi`). Each is a fact about the shared HTTP plumbing rather than about one
//! handler, so it lives here instead of being repeated in ninety annotations:
//! - every operation that reads a JSON body can answer 400 (broken JSON), 413 (too large) and 415
//!   (not sent as JSON), as [`crate::http::ApiJson`] and [`crate::http::extract::OptionalJson`] do;
//! - `Page_*` envelopes refer to their item schema instead of inlining a copy of it (utoipa 5
//!   inlines generic arguments);
//! - a `201` answer whose body carries an `id` links to the operations on `…/{id}` below the
//!   collection it was posted to, so generated clients and stateful fuzzers can chain the id.
//!
//! utoipa 5 serializes a Link Object's fields in snake case (`operation_id`), which no OpenAPI
//! reader knows; [`fix_link_keys`] renames them in the serialized document.

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr};

const PROBLEM_JSON: &str = "application/problem+json";

/// Bodies the server refuses as `{}` (422), which therefore carry `minProperties: 1`. (Set here:
/// utoipa-gen 5.5 turns `#[schema(min_properties = 1)]` into `maxProperties`.)
const REFUSE_EMPTY: &[&str] = &["UpdateUserRequest"];

/// Applies every rule of this module to `doc`.
pub fn apply(doc: &mut OpenApi) {
    let components = doc.components.take().unwrap_or_default();
    let ids: Vec<(String, String)> = operations(&doc.paths.paths)
        .map(|(path, _, op)| (path.to_owned(), op.operation_id.clone().unwrap_or_default()))
        .collect();
    let item_operations = |collection: &str| -> Vec<String> {
        let prefix = format!("{collection}/{{id}}");
        ids.iter()
            .filter(|(path, _)| {
                path.strip_prefix(&prefix).is_some_and(|rest| {
                    (rest.is_empty() || rest.starts_with('/')) && !rest.contains('{')
                })
            })
            .map(|(_, id)| id.clone())
            .collect()
    };
    let mut links: Vec<(String, Vec<String>)> = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        if let Some(post) = &item.post {
            if created_body_has_id(post, &components) {
                links.push((path.clone(), item_operations(path)));
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations_mut(item) {
            document_body_errors(op);
        }
        if let Some(patch) = item.patch.as_mut() {
            document_empty_patch(patch, &components);
        }
        if let Some((_, targets)) = links.iter().find(|(p, _)| p == path) {
            if let Some(post) = item.post.as_mut() {
                link_created(post, targets);
            }
        }
    }
    let mut components = components;
    refer_page_items(&mut components);
    for name in REFUSE_EMPTY {
        require_a_property(&mut components, name);
    }
    doc.components = Some(components);
}

fn operations(
    paths: &utoipa::openapi::path::PathsMap<String, PathItem>,
) -> impl Iterator<Item = (&str, &'static str, &Operation)> {
    paths.iter().flat_map(|(path, item)| {
        [
            ("get", &item.get),
            ("put", &item.put),
            ("post", &item.post),
            ("delete", &item.delete),
            ("patch", &item.patch),
        ]
        .into_iter()
        .filter_map(move |(method, op)| op.as_ref().map(|op| (path.as_str(), method, op)))
    })
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// 400, 413 and 415 on an operation that reads a JSON body, unless it documents its own.
fn document_body_errors(op: &mut Operation) {
    let reads_json = op
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));
    if !reads_json {
        return;
    }
    let responses = &mut op.responses.responses;
    for (status, description) in [
        ("400", "The body is not well-formed JSON"),
        ("413", "The body is larger than the JSON limit"),
        (
            "415",
            "The body is not sent with Content-Type: application/json",
        ),
    ] {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(description)));
    }
}

/// A PATCH body that may be `{}` (no `minProperties`) says so: it changes nothing and answers
/// the resource as it is. Those that refuse `{}` carry `minProperties: 1` and answer 422.
fn document_empty_patch(op: &mut Operation, components: &Components) {
    let Some(body) = op.request_body.as_mut() else {
        return;
    };
    let refuses_empty = body
        .content
        .get("application/json")
        .and_then(|c| c.schema.as_ref())
        .and_then(|schema| match schema {
            RefOr::Ref(r) => components.schemas.get(r.ref_location.rsplit('/').next()?),
            schema => Some(schema),
        })
        .is_some_and(|schema| {
            matches!(schema, RefOr::T(Schema::Object(o)) if o.min_properties.is_some_and(|n| n > 0))
        });
    if !refuses_empty {
        let note = "An empty object changes nothing and answers the resource as it is.";
        body.description = Some(match body.description.take() {
            Some(d) if !d.is_empty() => format!("{d} {note}"),
            _ => note.to_owned(),
        });
    }
}

/// Whether the `201` answer of `op` is a JSON object with an `id`.
fn created_body_has_id(op: &Operation, components: &Components) -> bool {
    let Some(RefOr::T(created)) = op.responses.responses.get("201") else {
        return false;
    };
    created
        .content
        .get("application/json")
        .and_then(|c| c.schema.as_ref())
        .is_some_and(|schema| has_id(schema, components, 0))
}

fn has_id(schema: &RefOr<Schema>, components: &Components, depth: u8) -> bool {
    if depth > 8 {
        return false;
    }
    match schema {
        RefOr::Ref(r) => r
            .ref_location
            .rsplit('/')
            .next()
            .and_then(|name| components.schemas.get(name))
            .is_some_and(|s| has_id(s, components, depth + 1)),
        RefOr::T(Schema::Object(o)) => {
            o.properties.contains_key("id") && o.required.iter().any(|r| r == "id")
        }
        RefOr::T(Schema::AllOf(all)) => all.items.iter().any(|s| has_id(s, components, depth + 1)),
        RefOr::T(_) => false,
    }
}

/// Links from the `201` answer of `op` to each operation in `targets`, `id` taken from the body.
fn link_created(op: &mut Operation, targets: &[String]) {
    let Some(RefOr::T(created)) = op.responses.responses.get_mut("201") else {
        return;
    };
    for target in targets {
        created.links.entry(target.clone()).or_insert_with(|| {
            RefOr::T(
                LinkBuilder::new()
                    .operation_id(target.clone())
                    .parameter("id", "$response.body#/id")
                    .description(format!("`id` of the created resource, for `{target}`"))
                    .build(),
            )
        });
    }
}

fn require_a_property(components: &mut Components, name: &str) {
    if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(name) {
        schema.min_properties = Some(1);
    }
}

/// `Page_X.items` as an array of `$ref X` when `X` is a component.
fn refer_page_items(components: &mut Components) {
    let names: Vec<String> = components
        .schemas
        .keys()
        .filter_map(|name| name.strip_prefix("Page_"))
        .filter(|item| components.schemas.contains_key(*item))
        .map(str::to_owned)
        .collect();
    for item in names {
        if let Some(RefOr::T(Schema::Object(page))) =
            components.schemas.get_mut(&format!("Page_{item}"))
        {
            if let Some(RefOr::T(Schema::Array(items))) = page.properties.get_mut("items") {
                items.items = ArrayItems::RefOrSchema(Box::new(Ref::from_schema_name(item).into()));
            }
        }
    }
}

/// Renames the snake-case fields utoipa writes in Link Objects (`operation_id`, `operation_ref`,
/// `request_body`) to their OpenAPI names, inside every `"links"` object of a pretty-printed
/// document and nowhere else.
pub fn fix_link_keys(pretty: &str) -> String {
    let mut out = String::with_capacity(pretty.len());
    let mut links_indent: Option<usize> = None;
    for line in pretty.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        let mut line = std::borrow::Cow::Borrowed(line);
        match links_indent {
            Some(at) if indent == at && trimmed.starts_with('}') => links_indent = None,
            Some(_) => {
                for (from, to) in [
                    ("\"operation_id\":", "\"operationId\":"),
                    ("\"operation_ref\":", "\"operationRef\":"),
                    ("\"request_body\":", "\"requestBody\":"),
                ] {
                    if let Some(rest) = trimmed.strip_prefix(from) {
                        line = format!("{}{to}{rest}", &line[..indent]).into();
                    }
                }
            }
            None if trimmed.starts_with("\"links\": {") && !trimmed.trim_end().ends_with('}') => {
                links_indent = Some(indent)
            }
            None => {}
        }
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_fields_get_their_openapi_names_and_nothing_else_changes() {
        let pretty = "{\n  \"operation_id\": 1,\n  \"links\": {\n    \"get\": {\n      \"operation_id\": \"get\",\n      \"request_body\": 2\n    }\n  },\n  \"request_body\": 3\n}\n";
        assert_eq!(
            fix_link_keys(pretty),
            "{\n  \"operation_id\": 1,\n  \"links\": {\n    \"get\": {\n      \"operationId\": \"get\",\n      \"requestBody\": 2\n    }\n  },\n  \"request_body\": 3\n}\n"
        );
    }
}
