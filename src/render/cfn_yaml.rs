//! CloudFormation YAML (with short-form tags such as `!Ref` and `!GetAtt`) to the
//! long-form JSON value CloudFormation itself works with.

use serde_json::{Map, Number, Value};
use serde_yaml_ng::value::{Tag, TaggedValue};
use serde_yaml_ng::Value as Yaml;

/// A YAML parse error with the 1-based line where the parser stopped.
#[derive(Debug)]
pub struct YamlError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Parse CloudFormation YAML (or JSON, which is YAML) into a long-form JSON value.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    let yaml: Yaml = serde_yaml_ng::from_str(text).map_err(|e| {
        let loc = e.location();
        let mut message = e.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        YamlError {
            line: loc.as_ref().map(|l| l.line()),
            column: loc.map(|l| l.column()),
            message,
        }
    })?;
    to_json(yaml).map_err(|message| YamlError {
        line: None,
        column: None,
        message,
    })
}

fn to_json(y: Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number(&n),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(seq) => {
            Value::Array(seq.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => return Err(format!("mapping key {other:?} is not a string")),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => tagged(*t)?,
    })
}

fn number(n: &serde_yaml_ng::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        n.as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(n.to_string()))
    }
}

fn tagged(t: TaggedValue) -> Result<Value, String> {
    let TaggedValue { tag, value } = t;
    let name = tag_name(&tag);
    let inner = to_json(value)?;
    let key = match name.as_str() {
        "Ref" => "Ref".to_string(),
        "Condition" => "Condition".to_string(),
        "GetAtt" => {
            // `!GetAtt Res.Attr` is the string form of `Fn::GetAtt: [Res, Attr]`.
            let v = match inner {
                Value::String(s) => match s.split_once('.') {
                    Some((r, a)) => Value::Array(vec![r.into(), a.into()]),
                    None => Value::String(s),
                },
                other => other,
            };
            let mut m = Map::new();
            m.insert("Fn::GetAtt".into(), v);
            return Ok(Value::Object(m));
        }
        other => format!("Fn::{other}"),
    };
    let mut m = Map::new();
    m.insert(key, inner);
    Ok(Value::Object(m))
}

fn tag_name(tag: &Tag) -> String {
    tag.to_string().trim_start_matches('!').to_string()
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn short_and_long_forms_parse_to_the_same_value() {
        let short = "A: !Ref X\nB: !GetAtt T.Arn\nC: !Sub '${AWS::Region}-x'\nD: !Join [',', [!Ref P, b]]\nE: !If [C1, !Ref AWS::NoValue, 1]\n";
        let long = r#"{"A": {"Ref": "X"}, "B": {"Fn::GetAtt": ["T", "Arn"]}, "C": {"Fn::Sub": "${AWS::Region}-x"},
            "D": {"Fn::Join": [",", [{"Ref": "P"}, "b"]]}, "E": {"Fn::If": ["C1", {"Ref": "AWS::NoValue"}, 1]}}"#;
        assert_eq!(parse(short).unwrap(), parse(long).unwrap());
        assert_eq!(
            parse(short).unwrap()["B"],
            json!({"Fn::GetAtt": ["T", "Arn"]})
        );
    }

    #[test]
    fn syntax_error_has_a_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line.is_some(), "{err:?}");
    }
}
