//! DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, ...) to plain JSON, for stream images.
//!
//! Stream records arrive with images in DynamoDB's attribute-value encoding; clients
//! want the plain item. Numbers keep their exact value: integers that fit i64/u64 become
//! JSON integers, other finite values JSON floats, anything else stays a string.

use serde_json::{Map, Number, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("attribute `{path}` is not a DynamoDB attribute value")]
pub struct DynamoJsonError {
    pub path: String,
}

/// Converts an item (a map of attribute values) to a plain JSON object.
pub fn item_to_json(item: &Map<String, Value>) -> Result<Value, DynamoJsonError> {
    let mut out = Map::with_capacity(item.len());
    for (k, v) in item {
        out.insert(k.clone(), attribute_to_json(v, k)?);
    }
    Ok(Value::Object(out))
}

fn attribute_to_json(value: &Value, path: &str) -> Result<Value, DynamoJsonError> {
    let err = || DynamoJsonError {
        path: path.to_string(),
    };
    let obj = value.as_object().filter(|o| o.len() == 1).ok_or_else(err)?;
    let (tag, inner) = obj.iter().next().ok_or_else(err)?;
    Ok(match (tag.as_str(), inner) {
        ("S", Value::String(s)) | ("B", Value::String(s)) => Value::String(s.clone()),
        ("N", Value::String(n)) => number(n),
        ("BOOL", Value::Bool(b)) => Value::Bool(*b),
        ("NULL", _) => Value::Null,
        ("SS", Value::Array(a)) | ("BS", Value::Array(a)) => Value::Array(a.clone()),
        ("NS", Value::Array(a)) => Value::Array(
            a.iter()
                .map(|n| n.as_str().map(number).ok_or_else(err))
                .collect::<Result<_, _>>()?,
        ),
        ("L", Value::Array(a)) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| attribute_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        ("M", Value::Object(m)) => {
            let mut out = Map::with_capacity(m.len());
            for (k, v) in m {
                out.insert(k.clone(), attribute_to_json(v, &format!("{path}.{k}"))?);
            }
            Value::Object(out)
        }
        _ => return Err(err()),
    })
}

fn number(n: &str) -> Value {
    if let Ok(i) = n.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = n.parse::<u64>() {
        return Value::Number(u.into());
    }
    match n.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(f) => Value::Number(f),
        None => Value::String(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_item_converts_to_plain_json() {
        let item = json!({
            "id": {"S": "stream-001"},
            "value": {"N": "1234"},
            "ratio": {"N": "0.5"},
            "ok": {"BOOL": true},
            "none": {"NULL": true},
            "tags": {"SS": ["a", "b"]},
            "sizes": {"NS": ["1", "2.5"]},
            "list": {"L": [{"S": "x"}, {"N": "-3"}]},
            "map": {"M": {"inner": {"S": "y"}}}
        });
        let got = item_to_json(item.as_object().expect("object")).expect("valid");
        assert_eq!(
            got,
            json!({
                "id": "stream-001", "value": 1234, "ratio": 0.5, "ok": true, "none": null,
                "tags": ["a", "b"], "sizes": [1, 2.5], "list": ["x", -3], "map": {"inner": "y"}
            })
        );
    }

    #[test]
    fn malformed_attribute_is_named() {
        let item = json!({"map": {"M": {"bad": {"Q": 1}}}});
        let err = item_to_json(item.as_object().expect("object")).expect_err("invalid");
        assert_eq!(err.path, "map.bad");
    }
}
