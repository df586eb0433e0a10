//! Paths inside a template entry and the recursive comparison that finds the
//! paths whose values differ.

use serde_json::Value;

/// One step of a path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// `Properties.Policies[0].PolicyDocument`
pub fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A CloudFormation intrinsic function or `Ref`: a one-key mapping such as
/// `{"Ref": "X"}` or `{"Fn::Sub": ...}`. Compared as a whole, never walked into,
/// so that paths name properties and not function arguments.
pub fn is_intrinsic(v: &Value) -> bool {
    match v.as_object() {
        Some(m) if m.len() == 1 => m
            .keys()
            .next()
            .is_some_and(|k| k == "Ref" || k == "Condition" || k.starts_with("Fn::")),
        _ => false,
    }
}

/// Semantic equality: CloudFormation passes scalars as strings, so `256` and
/// `"256"`, `true` and `"true"` are the same value; mapping order never matters.
pub fn same(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (get_att(a), get_att(b)) {
        return x == y;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => match (scalar(a), scalar(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// `Fn::GetAtt` as its two parts: `"T.Arn"` and `["T", "Arn"]` are the same.
fn get_att(v: &Value) -> Option<Vec<String>> {
    let m = v.as_object().filter(|m| m.len() == 1)?;
    match m.get("Fn::GetAtt")? {
        Value::String(s) => {
            let (r, a) = s.split_once('.')?;
            Some(vec![r.to_string(), a.to_string()])
        }
        Value::Array(parts) => parts
            .iter()
            .map(|p| p.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A leaf difference: the path and the old and new values (absent = not there).
pub type Leaf = (Vec<Seg>, Option<Value>, Option<Value>);

/// Every path below `path` where `old` and `new` differ. Mappings are walked key
/// by key; lists of the same length index by index; a list that grows or shrinks
/// is one change of the whole list (index-wise pairs would be noise).
pub fn diff(path: &mut Vec<Seg>, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Leaf>) {
    match (old, new) {
        (None, None) => {}
        (Some(o), Some(n)) if same(o, n) => {}
        (Some(Value::Object(o)), Some(Value::Object(n)))
            if !is_intrinsic(&Value::Object(o.clone()))
                && !is_intrinsic(&Value::Object(n.clone())) =>
        {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.extend(n.keys().filter(|k| !o.contains_key(*k)));
            for k in keys {
                path.push(Seg::Key(k.clone()));
                diff(path, o.get(k), n.get(k), out);
                path.pop();
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) if o.len() == n.len() => {
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                path.push(Seg::Index(i));
                diff(path, Some(a), Some(b), out);
                path.pop();
            }
        }
        (o, n) => out.push((path.clone(), o.cloned(), n.cloned())),
    }
}

/// Paths under `path` whose value references parameter `name` (`Ref` or `${name}`
/// in `Fn::Sub`), reported at the innermost non-intrinsic property.
pub fn references(path: &mut Vec<Seg>, v: &Value, name: &str, out: &mut Vec<Vec<Seg>>) {
    if is_intrinsic(v) {
        if mentions(v, name) {
            out.push(path.clone());
        }
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, w) in m {
                path.push(Seg::Key(k.clone()));
                references(path, w, name, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, w) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                references(path, w, name, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn mentions(v: &Value, name: &str) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, w)| match (k.as_str(), w) {
            ("Ref", Value::String(s)) => s == name,
            ("Fn::Sub", Value::String(s)) => sub_mentions(s, name),
            ("Fn::Sub", Value::Array(a)) => {
                a.first()
                    .and_then(Value::as_str)
                    .is_some_and(|s| sub_mentions(s, name))
                    || a.iter().skip(1).any(|x| mentions(x, name))
            }
            _ => mentions(w, name),
        }),
        Value::Array(a) => a.iter().any(|w| mentions(w, name)),
        _ => false,
    }
}

fn sub_mentions(text: &str, name: &str) -> bool {
    crate::render::check::sub_variables(text).contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaves(old: Value, new: Value) -> Vec<(String, Option<Value>, Option<Value>)> {
        let mut out = Vec::new();
        diff(&mut Vec::new(), Some(&old), Some(&new), &mut out);
        out.into_iter()
            .map(|(p, o, n)| (display(&p), o, n))
            .collect()
    }

    #[test]
    fn scalars_compare_as_cloudformation_passes_them() {
        assert!(same(
            &json!({"a": 256, "b": true}),
            &json!({"b": "true", "a": "256"})
        ));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
    }

    #[test]
    fn nested_changes_are_reported_at_their_paths() {
        let got = leaves(
            json!({"Properties": {"A": 1, "L": [{"X": 1}, {"X": 2}], "R": {"Ref": "P"}}}),
            json!({"Properties": {"A": 2, "L": [{"X": 1}, {"X": 3}], "R": {"Ref": "Q"}, "N": "n"}}),
        );
        let paths: Vec<&str> = got.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Properties.A",
                "Properties.L[1].X",
                "Properties.R",
                "Properties.N"
            ]
        );
        assert_eq!(got[3].1, None);
    }

    #[test]
    fn references_find_ref_and_sub() {
        let v = json!({"Properties": {"A": {"Ref": "P"}, "B": {"Fn::Sub": "x-${P}"}, "C": {"Fn::Sub": "${PX}"}}});
        let mut out = Vec::new();
        references(&mut Vec::new(), &v, "P", &mut out);
        let got: Vec<String> = out.iter().map(|p| display(p)).collect();
        assert_eq!(got, ["Properties.A", "Properties.B"]);
    }
}
