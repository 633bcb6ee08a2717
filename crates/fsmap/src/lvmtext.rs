//! The text format of LVM2 volume-group metadata.
//!
//! A document is a list of `key = value` assignments and `name { ... }` sections; values are
//! double-quoted strings (with `\` escapes), integers, floats, or `[ ... ]` lists of those; `#`
//! starts a comment. LVM writes one top-level section named after the volume group, followed by a
//! few assignments (`contents`, `version`, `description`, ...).
//!
//! The parser is strict where strictness protects the map: a key given twice is an error (which
//! one LVM would use is a guess), and so is anything it does not understand.

use crate::error::{bail, ensure, Result};

/// Nesting deeper than this is not LVM metadata (it writes four levels).
const MAX_NESTING: usize = 32;

/// A value on the right of `=`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    List(Vec<Value>),
}

/// A section: assignments and subsections in document order.
#[derive(Debug, Default)]
pub(crate) struct Section {
    pub entries: Vec<(String, Node)>,
}

/// What a key names.
#[derive(Debug)]
pub(crate) enum Node {
    Value(Value),
    Section(Section),
}

impl Section {
    fn get(&self, key: &str) -> Option<&Node> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }
    pub(crate) fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key)? {
            Node::Section(s) => Some(s),
            Node::Value(_) => None,
        }
    }
    pub(crate) fn value(&self, key: &str) -> Option<&Value> {
        match self.get(key)? {
            Node::Value(v) => Some(v),
            Node::Section(_) => None,
        }
    }
    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        match self.value(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        match self.value(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub(crate) fn list(&self, key: &str) -> Option<&[Value]> {
        match self.value(key)? {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// The string members of a list value (`status = ["READ", "WRITE"]`).
    pub(crate) fn flags(&self, key: &str) -> Vec<&str> {
        self.list(key)
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| {
                if let Value::Str(s) = v {
                    Some(s.as_str())
                } else {
                    None
                }
            })
            .collect()
    }
    /// Subsections in document order.
    pub(crate) fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.entries.iter().filter_map(|(k, n)| match n {
            Node::Section(s) => Some((k.as_str(), s)),
            Node::Value(_) => None,
        })
    }
    /// Every string anywhere below this section, with the key it sits under.
    pub(crate) fn all_strings<'a>(&'a self, out: &mut Vec<(&'a str, &'a str)>) {
        fn walk<'a>(key: &'a str, v: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
            match v {
                Value::Str(s) => out.push((key, s)),
                Value::List(l) => l.iter().for_each(|v| walk(key, v, out)),
                _ => {}
            }
        }
        for (k, n) in &self.entries {
            match n {
                Node::Value(v) => walk(k, v, out),
                Node::Section(s) => s.all_strings(out),
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(u8),
}

fn tokens(text: &str) -> Result<Vec<Tok>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\0' => break, // the stored text is NUL-terminated
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' | b'}' | b'[' | b']' | b'=' | b',' => {
                out.push(Tok::Punct(c));
                i += 1;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => bail!("unterminated string in LVM metadata"),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let Some(&e) = b.get(i + 1) else {
                                bail!("dangling escape in LVM metadata")
                            };
                            s.push(e);
                            i += 2;
                        }
                        Some(&x) => {
                            s.push(x);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(String::from_utf8_lossy(&s).into_owned()));
            }
            _ if c.is_ascii_alphanumeric() || b"_.+-".contains(&c) => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_.+-".contains(&b[i])) {
                    i += 1;
                }
                out.push(Tok::Word(text[start..i].to_string()));
            }
            _ => bail!("unexpected byte {c:#04x} in LVM metadata"),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<&Tok> {
        self.pos += 1;
        self.toks.get(self.pos - 1)
    }

    fn section(&mut self, depth: usize, top: bool) -> Result<Section> {
        ensure!(depth <= MAX_NESTING, "LVM metadata nested too deeply");
        let mut sec = Section::default();
        loop {
            let key = match self.next() {
                None if top => return Ok(sec),
                None => bail!("unterminated section in LVM metadata"),
                Some(Tok::Punct(b'}')) if !top => return Ok(sec),
                Some(Tok::Word(w)) => w.clone(),
                Some(t) => bail!("unexpected {t:?} in LVM metadata"),
            };
            ensure!(
                sec.get(&key).is_none(),
                "key {key:?} given twice in LVM metadata"
            );
            let node = match self.next() {
                Some(Tok::Punct(b'=')) => Node::Value(self.value(0)?),
                Some(Tok::Punct(b'{')) => Node::Section(self.section(depth + 1, false)?),
                t => bail!("expected = or {{ after {key:?} in LVM metadata, got {t:?}"),
            };
            sec.entries.push((key, node));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        ensure!(depth <= MAX_NESTING, "LVM metadata nested too deeply");
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::Str(s.clone())),
            Some(Tok::Word(w)) => {
                if let Ok(i) = w.parse::<i64>() {
                    Ok(Value::Int(i))
                } else if let Ok(f) = w.parse::<f64>() {
                    Ok(Value::Float(f))
                } else {
                    bail!("bare word {w:?} where LVM metadata needs a value")
                }
            }
            Some(Tok::Punct(b'[')) => {
                let mut l = Vec::new();
                if self.peek() == Some(&Tok::Punct(b']')) {
                    self.pos += 1;
                    return Ok(Value::List(l));
                }
                loop {
                    l.push(self.value(depth + 1)?);
                    match self.next() {
                        Some(Tok::Punct(b',')) => {}
                        Some(Tok::Punct(b']')) => return Ok(Value::List(l)),
                        t => bail!("expected , or ] in LVM metadata list, got {t:?}"),
                    }
                }
            }
            t => bail!("expected a value in LVM metadata, got {t:?}"),
        }
    }
}

/// Parses a whole metadata text.
pub(crate) fn parse(text: &str) -> Result<Section> {
    let mut p = Parser {
        toks: tokens(text)?,
        pos: 0,
    };
    p.section(0, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"vg0 {
id = "abc"
seqno = 3
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192 # 4 MiB

physical_volumes {
pv0 {
id = "x-y"
pe_start = 2048
}
}
logical_volumes {
lv-1.a+ {
segment1 {
stripes = [
"pv0", 0
]
}
}
}
}
# Generated by LVM2
contents = "Text Format Volume"
description = "quote \" inside"
empty = []
f = 1.5
"#;

    #[test]
    fn parses_lvm_shapes() {
        let doc = parse(SAMPLE).expect("parse");
        let vg = doc.section("vg0").expect("vg");
        assert_eq!(vg.int("seqno"), Some(3));
        assert_eq!(vg.flags("status"), vec!["RESIZEABLE", "READ", "WRITE"]);
        let pv = vg
            .section("physical_volumes")
            .and_then(|s| s.section("pv0"))
            .expect("pv0");
        assert_eq!(pv.str("id"), Some("x-y"));
        let lv = vg
            .section("logical_volumes")
            .and_then(|s| s.section("lv-1.a+"))
            .expect("lv");
        let seg = lv.section("segment1").expect("seg");
        assert_eq!(
            seg.list("stripes"),
            Some(&[Value::Str("pv0".into()), Value::Int(0)][..])
        );
        assert_eq!(doc.str("description"), Some("quote \" inside"));
        assert_eq!(doc.list("empty"), Some(&[][..]));
    }

    #[test]
    fn rejects_broken_text() {
        for bad in [
            "a {",
            "a = ",
            "a = [1,",
            "a = \"x",
            "a = 1\na = 2",
            "a = b",
            "{",
            "a = 1 ]",
            "a ; b",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let deep = "a { ".repeat(100);
        assert!(parse(&deep).is_err());
        let deep_list = format!("a = {}", "[".repeat(100));
        assert!(parse(&deep_list).is_err());
    }
}
