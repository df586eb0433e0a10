//! Route selection: evaluate `$request.body.<dotted.path>` on a text frame's JSON
//! body; non-JSON bodies and unmatched values fall back to `$default`.

use std::collections::BTreeMap;

use serde_json::Value;

pub(crate) const CONNECT: &str = "$connect";
pub(crate) const DISCONNECT: &str = "$disconnect";
pub(crate) const DEFAULT: &str = "$default";

/// The outcome of route selection for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// What the expression evaluated to (`None`: not JSON, no such field).
    pub(crate) selected: Option<String>,
    /// The route that runs (a named route or `$default`) and its function;
    /// `None` when nothing matches and there is no `$default`.
    pub(crate) route: Option<(String, String)>,
}

/// The dotted path of `$request.body.a.b` (or `${request.body.a.b}`); `None` for
/// expressions that do not read the body.
fn body_path(expression: &str) -> Option<Vec<String>> {
    let expression = expression.trim();
    let expression = match expression
        .strip_prefix("${")
        .and_then(|e| e.strip_suffix('}'))
    {
        Some(inner) => inner,
        None => expression.strip_prefix('$')?,
    };
    let path = expression.strip_prefix("request.body.")?;
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(parts)
}

/// Evaluate the selection expression on `body` and pick the route.
pub(crate) fn select(expression: &str, body: &str, routes: &BTreeMap<String, String>) -> Selection {
    let selected = evaluate(expression, body);
    let named = selected
        .as_ref()
        .filter(|key| !key.starts_with('$'))
        .and_then(|key| routes.get(key).map(|f| (key.clone(), f.clone())));
    let route = named.or_else(|| {
        routes
            .get(DEFAULT)
            .map(|f| (DEFAULT.to_string(), f.clone()))
    });
    Selection { selected, route }
}

/// The expression's value on `body`: strings as they are, numbers and booleans
/// as JSON text; objects, arrays, null and missing fields select nothing.
pub(crate) fn evaluate(expression: &str, body: &str) -> Option<String> {
    let path = body_path(expression)?;
    let json: Value = serde_json::from_str(body).ok()?;
    let mut value = &json;
    for part in path {
        value = value.as_object()?.get(&part)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
