//! Finding the line of a key path in YAML text, for errors found after parsing
//! (serde gives lines only for its own errors). The text is parsed again as a
//! stream of events with their positions (`yaml-rust2`), so block and flow style,
//! quoted keys and comments are all the parser's business, not guessed here.

use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::Event;

/// The 1-based line where the last key of `path` is written (a mapping key, or a
/// scalar item of a sequence, block or flow). `None` when it cannot be found or the
/// text does not parse.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut finder = Finder {
        target: path,
        stack: Vec::new(),
        found: None,
    };
    Parser::new_from_str(text).load(&mut finder, false).ok()?;
    finder.found
}

enum Frame {
    /// A mapping; `key` is the key whose value is being read, `None` while the
    /// next event is a key.
    Map {
        key: Option<String>,
    },
    Seq,
}

struct Finder<'a> {
    target: &'a [&'a str],
    stack: Vec<Frame>,
    found: Option<usize>,
}

impl Finder<'_> {
    /// The keys from the document's root to the current node.
    fn path_with(&self, last: &str) -> bool {
        let keys: Vec<&str> = self
            .stack
            .iter()
            .filter_map(|f| match f {
                Frame::Map { key: Some(k) } => Some(k.as_str()),
                _ => None,
            })
            .chain(std::iter::once(last))
            .collect();
        keys == self.target
    }

    /// A value (scalar or collection) ended: the enclosing mapping reads a key next.
    fn value_done(&mut self) {
        if let Some(Frame::Map { key }) = self.stack.last_mut() {
            *key = None;
        }
    }

    fn hit(&mut self, mark: Marker) {
        if self.found.is_none() {
            self.found = Some(mark.line().max(1));
        }
    }
}

impl MarkedEventReceiver for Finder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => match self.stack.last() {
                Some(Frame::Map { key: None }) => {
                    if self.path_with(&value) {
                        self.hit(mark);
                    }
                    if let Some(Frame::Map { key }) = self.stack.last_mut() {
                        *key = Some(value);
                    }
                }
                Some(Frame::Seq) => {
                    if self.path_with(&value) {
                        self.hit(mark);
                    }
                }
                _ => self.value_done(),
            },
            Event::MappingStart(..) => self.stack.push(Frame::Map { key: None }),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            Event::Alias(_) => self.value_done(),
            _ => {}
        }
    }
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

    #[test]
    fn quoted_keys_flow_mappings_and_comments_are_the_parsers_business() {
        let doc = "# network: not this\n\"params\":\n  # a: nor this\n  'a': 1\nstages: {dev: {params: {b: 2}},\n  prod: {}}\nlist:\n  - name: x\n    port: 1\n";
        assert_eq!(line_of(doc, &["params", "a"]), Some(4));
        assert_eq!(line_of(doc, &["stages", "dev", "params", "b"]), Some(5));
        assert_eq!(line_of(doc, &["stages", "prod"]), Some(6));
        assert_eq!(line_of(doc, &["list", "port"]), Some(9));
        assert_eq!(line_of(doc, &["network"]), None);
        assert_eq!(line_of("a: [unclosed\n", &["a"]), None);
    }
}
