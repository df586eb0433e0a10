//! DynamoDB JSON (`{"S":"x"}`, `{"N":"1"}`, `{"M":{..}}`...) from the stream
//! SDK's attribute values, as Lambda puts them in stream events.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::AttributeValue;
use base64::Engine;
use serde_json::{json, Map, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One attribute value in DynamoDB JSON. Binary values are base64, as on the wire.
pub fn attribute_value(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bs(bs) => {
            json!({ "BS": bs.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() })
        }
        AttributeValue::L(items) => {
            json!({ "L": items.iter().map(attribute_value).collect::<Vec<_>>() })
        }
        AttributeValue::M(m) => json!({ "M": item(m) }),
        // A type newer than this SDK: nothing faithful to write.
        _ => json!({ "NULL": true }),
    }
}

/// An item (`Keys`, `NewImage`, `OldImage`) in DynamoDB JSON, keys sorted.
pub fn item(m: &HashMap<String, AttributeValue>) -> Value {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let mut out = Map::new();
    for k in keys {
        if let Some(v) = m.get(k) {
            out.insert(k.clone(), attribute_value(v));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::Blob;

    #[test]
    fn every_type_converts() {
        let mut inner = HashMap::new();
        inner.insert("n".to_string(), AttributeValue::N("1.5".into()));
        let mut m = HashMap::new();
        m.insert("s".to_string(), AttributeValue::S("x".into()));
        m.insert("n".to_string(), AttributeValue::N("1".into()));
        m.insert(
            "b".to_string(),
            AttributeValue::B(Blob::new(b"hi".to_vec())),
        );
        m.insert("t".to_string(), AttributeValue::Bool(true));
        m.insert("z".to_string(), AttributeValue::Null(true));
        m.insert(
            "ss".to_string(),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
        );
        m.insert("ns".to_string(), AttributeValue::Ns(vec!["1".into()]));
        m.insert(
            "bs".to_string(),
            AttributeValue::Bs(vec![Blob::new(vec![0u8, 255])]),
        );
        m.insert(
            "l".to_string(),
            AttributeValue::L(vec![
                AttributeValue::S("y".into()),
                AttributeValue::M(inner),
            ]),
        );
        assert_eq!(
            item(&m),
            json!({
                "b": {"B": "aGk="},
                "bs": {"BS": ["AP8="]},
                "l": {"L": [{"S": "y"}, {"M": {"n": {"N": "1.5"}}}]},
                "n": {"N": "1"},
                "ns": {"NS": ["1"]},
                "s": {"S": "x"},
                "ss": {"SS": ["a", "b"]},
                "t": {"BOOL": true},
                "z": {"NULL": true},
            })
        );
    }
}
