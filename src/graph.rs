//! The dependency graph between stacks (`needs` and `depends_on`), its
//! topological waves, and cycle reports.

use std::collections::{BTreeMap, BTreeSet};

use crate::project::Project;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("dependency cycle: {}", .path.join(" -> "))]
    Cycle { path: Vec<String> },
}

/// Stack -> the stacks it depends on.
#[derive(Debug, Clone)]
pub struct Graph {
    deps: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn from_project(project: &Project) -> Self {
        let deps = project
            .stacks
            .values()
            .map(|s| {
                let mut d: BTreeSet<String> = s.needs.keys().cloned().collect();
                d.extend(s.depends_on.iter().cloned());
                (s.name.clone(), d)
            })
            .collect();
        Graph { deps }
    }

    pub fn from_edges<'a>(edges: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Self {
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (node, ds) in edges {
            deps.entry(node.to_string())
                .or_default()
                .extend(ds.iter().map(|d| d.to_string()));
            for d in ds {
                deps.entry(d.to_string()).or_default();
            }
        }
        Graph { deps }
    }

    pub fn dependencies(&self, node: &str) -> impl Iterator<Item = &String> {
        self.deps.get(node).into_iter().flatten()
    }

    pub fn dependents<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.deps
            .iter()
            .filter(move |(_, d)| d.contains(node))
            .map(|(n, _)| n)
    }

    /// The named stacks plus everything they need, transitively.
    pub fn with_dependencies(&self, names: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            if out.insert(n.clone()) {
                todo.extend(self.dependencies(&n).cloned());
            }
        }
        out
    }

    /// The named stacks plus everything that needs them, transitively.
    pub fn with_dependents(&self, names: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            if out.insert(n.clone()) {
                todo.extend(self.dependents(&n).cloned());
            }
        }
        out
    }

    /// Topological waves: every stack of a wave depends only on earlier waves.
    /// Within a wave, names are sorted.
    pub fn waves(&self) -> Result<Vec<Vec<String>>, Error> {
        if let Some(path) = self.find_cycle() {
            return Err(Error::Cycle { path });
        }
        let mut remaining: BTreeMap<&String, BTreeSet<&String>> = self
            .deps
            .iter()
            .map(|(n, d)| (n, d.iter().collect()))
            .collect();
        let mut waves = Vec::new();
        while !remaining.is_empty() {
            let ready: Vec<&String> = remaining
                .iter()
                .filter(|(_, d)| d.is_empty())
                .map(|(n, _)| *n)
                .collect();
            for n in &ready {
                remaining.remove(n);
            }
            for d in remaining.values_mut() {
                for n in &ready {
                    d.remove(n);
                }
            }
            waves.push(ready.into_iter().cloned().collect());
        }
        Ok(waves)
    }

    /// Waves restricted to `selected` (the order of the full graph is kept).
    pub fn waves_of(&self, selected: &BTreeSet<String>) -> Result<Vec<Vec<String>>, Error> {
        Ok(self
            .waves()?
            .into_iter()
            .map(|w| {
                w.into_iter()
                    .filter(|n| selected.contains(n))
                    .collect::<Vec<_>>()
            })
            .filter(|w| !w.is_empty())
            .collect())
    }

    /// A cycle as a path that starts and ends at the same stack, if any.
    fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit<'a>(
            g: &'a Graph,
            n: &'a String,
            marks: &mut BTreeMap<&'a String, Mark>,
            stack: &mut Vec<&'a String>,
        ) -> Option<Vec<String>> {
            match marks.get(n) {
                Some(Mark::Done) => return None,
                Some(Mark::Visiting) => {
                    let start = stack.iter().position(|s| *s == n).unwrap_or(0);
                    let mut path: Vec<String> =
                        stack[start..].iter().map(|s| s.to_string()).collect();
                    path.push(n.clone());
                    return Some(path);
                }
                None => {}
            }
            marks.insert(n, Mark::Visiting);
            stack.push(n);
            for d in g.deps.get(n).into_iter().flatten() {
                if let Some(c) = visit(g, d, marks, stack) {
                    return Some(c);
                }
            }
            stack.pop();
            marks.insert(n, Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        for n in self.deps.keys() {
            let mut stack = Vec::new();
            if let Some(c) = visit(self, n, &mut marks, &mut stack) {
                return Some(c);
            }
        }
        None
    }

    /// Graphviz DOT: an edge from each stack to what it depends on.
    pub fn to_dot(&self, labels: &BTreeMap<String, Vec<String>>) -> String {
        let mut out = String::from("digraph stacks {\n  rankdir=LR;\n  node [shape=box];\n");
        for n in self.deps.keys() {
            out.push_str(&format!("  \"{n}\";\n"));
        }
        for (n, ds) in &self.deps {
            for d in ds {
                let key = format!("{n}->{d}");
                match labels.get(&key) {
                    Some(l) if !l.is_empty() => out.push_str(&format!(
                        "  \"{n}\" -> \"{d}\" [label=\"{}\"];\n",
                        l.join("\\n")
                    )),
                    _ => out.push_str(&format!("  \"{n}\" -> \"{d}\";\n")),
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barkbase_shape_gives_four_waves() {
        let g = Graph::from_edges([
            ("network", &[][..]),
            ("database", &["network"][..]),
            ("realtime", &["network", "database"][..]),
            ("jobs", &["network", "database"][..]),
            ("experience", &["realtime"][..]),
        ]);
        assert_eq!(
            g.waves().unwrap(),
            vec![
                vec!["network".to_string()],
                vec!["database".to_string()],
                vec!["jobs".to_string(), "realtime".to_string()],
                vec!["experience".to_string()],
            ]
        );
        let sel = g.with_dependencies(&["experience".to_string()]);
        assert_eq!(sel.len(), 4);
        assert!(!sel.contains("jobs"));
        let down = g.with_dependents(&["realtime".to_string()]);
        assert_eq!(
            down.into_iter().collect::<Vec<_>>(),
            vec!["experience", "realtime"]
        );
    }

    #[test]
    fn cycle_is_reported_with_its_full_path() {
        let g = Graph::from_edges([
            ("network", &[][..]),
            ("realtime", &["network", "experience"][..]),
            ("experience", &["realtime"][..]),
        ]);
        assert_eq!(
            g.waves(),
            Err(Error::Cycle {
                path: vec!["experience".into(), "realtime".into(), "experience".into()]
            })
        );
    }
}
