//! Values as people read them in a diff: intrinsics in their short YAML form
//! (`!Ref X`, `!GetAtt T.Arn`), scalars bare, the rest as JSON.

use serde_json::Value;

/// One line, compact. Long values are still one line; `is_long` says when to
/// show a text diff of `block` instead.
pub fn inline(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| s.clone()),
        Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
        Value::Object(m) if m.len() == 1 => {
            let (k, arg) = m
                .iter()
                .next()
                .map(|(k, a)| (k.as_str(), a))
                .unwrap_or(("", v));
            match (k, arg) {
                ("Ref", Value::String(s)) => format!("!Ref {s}"),
                ("Fn::GetAtt", Value::Array(a)) if a.iter().all(Value::is_string) => format!(
                    "!GetAtt {}",
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(".")
                ),
                ("Fn::Sub", Value::String(s)) => {
                    format!("!Sub {}", inline(&Value::String(s.clone())))
                }
                (k, arg) if k.starts_with("Fn::") => format!("!{} {}", &k[4..], inline(arg)),
                _ => compact_json(v),
            }
        }
        Value::Array(a) => format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => compact_json(v),
    }
}

/// A short label for table cells (IAM resources, principals): `${T.Arn}` for a
/// GetAtt, `${P}` for a Ref, the template text for a Sub.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.len() == 1 => match m.iter().next() {
            Some((k, Value::String(s))) if k == "Ref" => format!("${{{s}}}"),
            Some((k, Value::Array(a))) if k == "Fn::GetAtt" => format!(
                "${{{}}}",
                a.iter()
                    .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| inline(x)))
                    .collect::<Vec<_>>()
                    .join(".")
            ),
            Some((k, Value::String(s))) if k == "Fn::Sub" => s.clone(),
            Some((k, Value::Array(a))) if k == "Fn::Sub" => a
                .first()
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| inline(v)),
            _ => inline(v),
        },
        _ => inline(v),
    }
}

/// The multi-line form a text diff is made of: strings as their text, the rest
/// as pretty JSON.
pub fn block(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

/// Too long for `old -> new` on one line: a multi-line string, or an inline form
/// over 60 characters (policy documents, inline code).
pub fn is_long(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('\n')) || inline(v).chars().count() > 60
}

fn compact_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intrinsics_read_like_short_yaml() {
        assert_eq!(inline(&json!({"Ref": "P"})), "!Ref P");
        assert_eq!(
            inline(&json!({"Fn::GetAtt": ["T", "Arn"]})),
            "!GetAtt T.Arn"
        );
        assert_eq!(inline(&json!({"Fn::Sub": "a-${P}"})), "!Sub \"a-${P}\"");
        assert_eq!(inline(&json!(7)), "7");
        assert_eq!(cell(&json!({"Fn::GetAtt": ["T", "Arn"]})), "${T.Arn}");
    }
}
