//! The pure parts: route selection, ids, formats, path segments.

use std::collections::BTreeMap;

use chrono::TimeZone;

use crate::dev::gateway::ids::IdGenerator;
use crate::dev::gateway::payload::{header_case, iso8601, request_time};
use crate::dev::gateway::route::{evaluate, select};
use crate::dev::gateway::server::segments;

fn routes(keys: &[&str]) -> BTreeMap<String, String> {
    keys.iter()
        .map(|k| (k.to_string(), format!("fn{k}")))
        .collect()
}

#[test]
fn selection_expressions_read_the_json_body() {
    let e = "$request.body.action";
    assert_eq!(evaluate(e, r#"{"action":"a"}"#).as_deref(), Some("a"));
    assert_eq!(evaluate(e, r#"{"action":3}"#).as_deref(), Some("3"));
    assert_eq!(evaluate(e, r#"{"action":true}"#).as_deref(), Some("true"));
    assert_eq!(evaluate(e, r#"{"action":null}"#), None);
    assert_eq!(evaluate(e, r#"{"other":"a"}"#), None);
    assert_eq!(evaluate(e, "[1]"), None);
    assert_eq!(evaluate(e, "nope"), None);
    assert_eq!(
        evaluate("${request.body.a.b}", r#"{"a":{"b":"x"}}"#).as_deref(),
        Some("x")
    );
    assert_eq!(evaluate("$request.header.x", r#"{"x":"a"}"#), None);
    assert_eq!(evaluate("$request.body.", r#"{"":"a"}"#), None);
}

#[test]
fn select_falls_back_to_default_and_never_picks_special_routes() {
    let e = "$request.body.action";
    let all = routes(&["$connect", "$default", "send"]);
    let s = select(e, r#"{"action":"send"}"#, &all);
    assert_eq!(s.route, Some(("send".into(), "fnsend".into())));
    let s = select(e, r#"{"action":"$connect"}"#, &all);
    assert_eq!(s.route, Some(("$default".into(), "fn$default".into())));
    assert_eq!(s.selected.as_deref(), Some("$connect"));
    let s = select(e, "text", &routes(&["send"]));
    assert_eq!(s.route, None);
    assert_eq!(s.selected, None);
}

#[test]
fn ids_are_16_characters_of_base64_ending_in_equals_and_unique() {
    let ids = IdGenerator::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let id = ids.next_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('=') && !id.ends_with("=="), "{id}");
        assert!(seen.insert(id));
    }
    let trace = ids.trace_id(0x65ab_a1b2);
    assert!(trace.starts_with("Root=1-65aba1b2-"), "{trace}");
    assert_eq!(trace.len(), "Root=1-".len() + 8 + 1 + 24);
    // Two gateways do not repeat each other.
    assert_ne!(IdGenerator::new().next_id(), IdGenerator::new().next_id());
}

#[test]
fn times_are_formatted_as_api_gateway_does() {
    let at = chrono::Utc
        .with_ymd_and_hms(2024, 1, 20, 11, 55, 0)
        .single()
        .unwrap();
    assert_eq!(request_time(at), "20/Jan/2024:11:55:00 +0000");
    assert_eq!(iso8601(at), "2024-01-20T11:55:00.000Z");
}

#[test]
fn header_names_are_spelled_as_clients_send_them() {
    assert_eq!(header_case("sec-websocket-key"), "Sec-WebSocket-Key");
    assert_eq!(header_case("user-agent"), "User-Agent");
    assert_eq!(header_case("host"), "Host");
    assert_eq!(header_case("x-amzn-trace-id"), "X-Amzn-Trace-Id");
}

#[test]
fn path_segments_are_percent_decoded_one_by_one() {
    assert_eq!(
        segments("/local/%40connections/R0oXAdfD0kwCH6w%3D").unwrap(),
        ["local", "@connections", "R0oXAdfD0kwCH6w="]
    );
    // An encoded `/` in an id stays inside its segment.
    assert_eq!(
        segments("/local/@connections/a%2Fb%2Bc%3D").unwrap(),
        ["local", "@connections", "a/b+c="]
    );
    assert!(segments("/local/%FF").is_none());
}
