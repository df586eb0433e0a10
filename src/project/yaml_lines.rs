//! Finding the line of a key path in YAML text, for errors found after parsing
//! (serde gives lines only for its own errors).

/// The 1-based line where the last key of `path` is written, following the
/// indentation of block-style YAML. `None` when it cannot be found.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut start = 0usize;
    let mut parent_indent: Option<usize> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    for key in path {
        // Flow style on the parent's own line: `network: [VpcId, SubnetIds]`.
        if let Some((i, indent)) = found {
            let line: &str = lines[i];
            if let Some((_, rest)) = line.split_once(':') {
                let words = rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'));
                if words.into_iter().any(|w| w == *key) {
                    found = Some((i, indent));
                    continue;
                }
            }
        }
        found = None;
        for (i, raw) in lines.iter().enumerate().skip(start) {
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = raw.len() - trimmed.len();
            if let Some(p) = parent_indent {
                if indent <= p && i > start {
                    break;
                }
            }
            let entry = trimmed.strip_prefix("- ").unwrap_or(trimmed);
            let name = entry
                .split_once(':')
                .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\''));
            if name == Some(key) || entry.trim() == *key {
                found = Some((i, indent));
                break;
            }
        }
        let (i, indent) = found?;
        start = i + 1;
        parent_indent = Some(indent);
        found = Some((i, indent));
    }
    found.map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const DOC: &str = "description: x\nneeds:\n  network: [VpcId, SubnetIds]\n  database:\n    - DbSecretArn\nparams:\n  a: 1\n";

    #[test]
    fn finds_nested_keys_and_list_items() {
        assert_eq!(line_of(DOC, &["needs"]), Some(2));
        assert_eq!(line_of(DOC, &["needs", "network"]), Some(3));
        assert_eq!(line_of(DOC, &["needs", "network", "SubnetIds"]), Some(3));
        assert_eq!(line_of(DOC, &["needs", "database", "DbSecretArn"]), Some(5));
        assert_eq!(line_of(DOC, &["params", "a"]), Some(7));
        assert_eq!(line_of(DOC, &["needs", "a"]), None);
    }
}
