//! A small unified line diff for long values (policy documents, inline code).

/// One line of a unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `@@ -a,b +c,d @@`
    Hunk(String),
    Same(String),
    Removed(String),
    Added(String),
}

/// Above this many line pairs the LCS table is too big: show all old lines
/// removed and all new lines added.
const MAX_CELLS: usize = 4_000_000;

/// The unified diff of `old` and `new` with `context` unchanged lines around
/// each change.
pub fn unified(old: &str, new: &str, context: usize) -> Vec<Line> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    hunks(&ops, context)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op<'a> {
    Same(&'a str, usize, usize),
    Del(&'a str, usize),
    Ins(&'a str, usize),
}

fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > MAX_CELLS {
        let mut ops: Vec<Op> = a.iter().enumerate().map(|(i, l)| Op::Del(l, i)).collect();
        ops.extend(b.iter().enumerate().map(|(j, l)| Op::Ins(l, j)));
        return ops;
    }
    // lcs[i][j] = length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(a[i], i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(Op::Ins(b[j], j));
            j += 1;
        } else {
            ops.push(Op::Del(a[i], i));
            i += 1;
        }
    }
    // Removals before additions within a run reads better.
    let mut k = 0;
    while k < ops.len() {
        if matches!(ops[k], Op::Same(..)) {
            k += 1;
            continue;
        }
        let start = k;
        while k < ops.len() && !matches!(ops[k], Op::Same(..)) {
            k += 1;
        }
        ops[start..k].sort_by_key(|o| matches!(o, Op::Ins(..)));
    }
    ops
}

fn hunks(ops: &[Op], context: usize) -> Vec<Line> {
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    let mut idx = 0;
    while idx < changed.len() {
        let start = changed[idx].saturating_sub(context);
        let mut end = changed[idx];
        while idx + 1 < changed.len() && changed[idx + 1] <= end + 2 * context + 1 {
            idx += 1;
            end = changed[idx];
        }
        let end = (end + context + 1).min(ops.len());
        idx += 1;
        let (mut old_start, mut new_start, mut old_len, mut new_len) = (None, None, 0, 0);
        for op in &ops[start..end] {
            match *op {
                Op::Same(_, i, j) => {
                    old_start.get_or_insert(i);
                    new_start.get_or_insert(j);
                    old_len += 1;
                    new_len += 1;
                }
                Op::Del(_, i) => {
                    old_start.get_or_insert(i);
                    old_len += 1;
                }
                Op::Ins(_, j) => {
                    new_start.get_or_insert(j);
                    new_len += 1;
                }
            }
        }
        out.push(Line::Hunk(format!(
            "@@ -{},{old_len} +{},{new_len} @@",
            old_start.map_or(0, |s| s + 1),
            new_start.map_or(0, |s| s + 1)
        )));
        for op in &ops[start..end] {
            out.push(match *op {
                Op::Same(l, ..) => Line::Same(l.to_string()),
                Op::Del(l, _) => Line::Removed(l.to_string()),
                Op::Ins(l, _) => Line::Added(l.to_string()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_line_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\n";
        let new = "a\nb\nc\nD\ne\nf\ng\n";
        let got = unified(old, new, 1);
        assert_eq!(
            got,
            vec![
                Line::Hunk("@@ -3,3 +3,3 @@".into()),
                Line::Same("c".into()),
                Line::Removed("d".into()),
                Line::Added("D".into()),
                Line::Same("e".into()),
            ]
        );
    }

    #[test]
    fn distant_changes_make_two_hunks() {
        let old: String = (0..20).map(|i| format!("{i}\n")).collect();
        let new = old.replace("2\n", "two\n").replace("17\n", "seventeen\n");
        let hunks = unified(&old, &new, 2)
            .into_iter()
            .filter(|l| matches!(l, Line::Hunk(_)))
            .count();
        assert_eq!(hunks, 2);
    }
}
