//! A small regular-expression matcher for `path_regex` cache rules. A full regex crate cost ~19 KB
//! gzip of the worker (over 5 % of its size) for a feature that matches URL paths, so this covers
//! the common syntax instead: literals, `.`, classes `[a-z0-9_]` / `[^/]`, escapes `\d \w \s \.`,
//! groups `( )` with alternation `|`, quantifiers `* + ?` and `{m}` `{m,}` `{m,n}`, anchors `^ $`.
//! Matching is a backtracking search with a step budget, so no pattern can stall a request: past
//! the budget the rule simply does not match. Patterns are checked when `CACHE_RULES` is parsed.

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Char(char),
    Any,
    Class { ranges: Vec<(char, char)>, negated: bool },
    Group(Vec<Vec<Node>>),
    Start,
    End,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    atom: Atom,
    min: u32,
    max: u32,
}

#[derive(Debug, Clone)]
pub struct Regex {
    alternatives: Vec<Vec<Node>>,
}

const MAX_STEPS: u32 = 100_000;
const MAX_REPEAT: u32 = 1000;

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    depth: usize,
}

fn class_escape(c: char) -> Option<Vec<(char, char)>> {
    match c {
        'd' => Some(vec![('0', '9')]),
        'w' => Some(vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]),
        's' => Some(vec![(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')]),
        _ => None,
    }
}

impl Parser<'_> {
    fn alternatives(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alts = vec![self.sequence()?];
        while self.chars.peek() == Some(&'|') {
            self.chars.next();
            alts.push(self.sequence()?);
        }
        Ok(alts)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, String> {
        let mut seq = Vec::new();
        while let Some(&c) = self.chars.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let (min, max) = self.quantifier()?;
            if max != 1 && matches!(atom, Atom::Start | Atom::End) {
                return Err("an anchor cannot be repeated".into());
            }
            seq.push(Node { atom, min, max });
        }
        Ok(seq)
    }

    fn atom(&mut self) -> Result<Atom, String> {
        let c = self.chars.next().ok_or("unexpected end")?;
        Ok(match c {
            '.' => Atom::Any,
            '^' => Atom::Start,
            '$' => Atom::End,
            '(' => {
                self.depth += 1;
                if self.depth > 16 {
                    return Err("groups nested too deeply".into());
                }
                if self.chars.peek() == Some(&'?') {
                    self.chars.next();
                    if self.chars.next() != Some(':') {
                        return Err("only (?:...) groups are supported".into());
                    }
                }
                let alts = self.alternatives()?;
                if self.chars.next() != Some(')') {
                    return Err("unclosed group".into());
                }
                self.depth -= 1;
                Atom::Group(alts)
            }
            ')' => return Err("unopened group".into()),
            '[' => self.class()?,
            '\\' => {
                let e = self.chars.next().ok_or("dangling escape")?;
                match class_escape(e) {
                    Some(ranges) => Atom::Class { ranges, negated: false },
                    None if e.is_ascii_alphanumeric() => return Err(format!("unsupported escape \\{e}")),
                    None => Atom::Char(e),
                }
            }
            '*' | '+' | '?' | '{' => return Err(format!("nothing to repeat before {c}")),
            c => Atom::Char(c),
        })
    }

    fn class(&mut self) -> Result<Atom, String> {
        let negated = self.chars.peek() == Some(&'^');
        if negated {
            self.chars.next();
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.chars.next().ok_or("unclosed character class")?;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let e = self.chars.next().ok_or("dangling escape")?;
                if let Some(r) = class_escape(e) {
                    ranges.extend(r);
                    continue;
                }
                e
            } else {
                c
            };
            if self.chars.peek() == Some(&'-') {
                self.chars.next();
                match self.chars.peek() {
                    Some(&']') | None => {
                        ranges.push((lo, lo));
                        ranges.push(('-', '-'));
                    }
                    Some(_) => {
                        let hi = self.chars.next().ok_or("unclosed character class")?;
                        if hi < lo {
                            return Err(format!("bad range {lo}-{hi}"));
                        }
                        ranges.push((lo, hi));
                    }
                }
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Atom::Class { ranges, negated })
    }

    fn number(&mut self) -> Option<u32> {
        let mut n: Option<u32> = None;
        while let Some(d) = self.chars.peek().and_then(|c| c.to_digit(10)) {
            self.chars.next();
            n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d));
        }
        n
    }

    fn quantifier(&mut self) -> Result<(u32, u32), String> {
        let q = match self.chars.peek() {
            Some('*') => (0, MAX_REPEAT),
            Some('+') => (1, MAX_REPEAT),
            Some('?') => (0, 1),
            Some('{') => {
                self.chars.next();
                let min = self.number().ok_or("expected a number after {")?;
                let max = if self.chars.peek() == Some(&',') {
                    self.chars.next();
                    self.number().unwrap_or(MAX_REPEAT)
                } else {
                    min
                };
                if self.chars.next() != Some('}') || max < min || max > MAX_REPEAT {
                    return Err("bad {m,n} repetition".into());
                }
                return Ok((min, max));
            }
            _ => return Ok((1, 1)),
        };
        self.chars.next();
        if matches!(self.chars.peek(), Some('?') | Some('+')) {
            return Err("lazy and possessive quantifiers are not supported".into());
        }
        Ok(q)
    }
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, String> {
        if pattern.len() > 512 {
            return Err("pattern longer than 512 characters".into());
        }
        let mut p = Parser { chars: pattern.chars().peekable(), depth: 0 };
        let alternatives = p.alternatives()?;
        if p.chars.next().is_some() {
            return Err("unopened group".into());
        }
        Ok(Regex { alternatives })
    }

    /// True when the pattern matches somewhere in `text` (anchors pin it, as usual).
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let mut steps = 0u32;
        (0..=chars.len()).any(|start| {
            let m = Matcher { text: &chars, steps: &mut steps };
            m.alts(&self.alternatives, start, &mut |_, _| true)
        })
    }
}

struct Matcher<'t, 's> {
    text: &'t [char],
    steps: &'s mut u32,
}

impl Matcher<'_, '_> {
    fn budget(&mut self) -> bool {
        *self.steps += 1;
        *self.steps <= MAX_STEPS
    }

    fn alts(mut self, alts: &[Vec<Node>], pos: usize, k: &mut dyn FnMut(&mut Self, usize) -> bool) -> bool {
        alts.iter().any(|seq| self.seq(seq, pos, k))
    }

    fn seq(&mut self, seq: &[Node], pos: usize, k: &mut dyn FnMut(&mut Self, usize) -> bool) -> bool {
        match seq.split_first() {
            None => k(self, pos),
            Some((node, rest)) => self.repeat(node, 0, pos, &mut |m, p| m.seq(rest, p, k)),
        }
    }

    /// Greedy: try one more repetition first, then stop if `min` is reached.
    fn repeat(&mut self, node: &Node, count: u32, pos: usize, k: &mut dyn FnMut(&mut Self, usize) -> bool) -> bool {
        if !self.budget() {
            return false;
        }
        if count < node.max {
            let more = self.one(&node.atom, pos, &mut |m, p| (p != pos || count < node.min) && m.repeat(node, count + 1, p, k));
            if more {
                return true;
            }
        }
        count >= node.min && k(self, pos)
    }

    fn one(&mut self, atom: &Atom, pos: usize, k: &mut dyn FnMut(&mut Self, usize) -> bool) -> bool {
        let c = self.text.get(pos).copied();
        match atom {
            Atom::Start => pos == 0 && k(self, pos),
            Atom::End => pos == self.text.len() && k(self, pos),
            Atom::Any => c.is_some_and(|c| c != '\n') && k(self, pos + 1),
            Atom::Char(x) => c == Some(*x) && k(self, pos + 1),
            Atom::Class { ranges, negated } => c.is_some_and(|c| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated) && k(self, pos + 1),
            Atom::Group(alts) => alts.iter().any(|seq| self.seq(seq, pos, k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}")).is_match(t)
    }

    #[test]
    fn matches_like_a_regex_should() {
        let cases = [
            (r"^/feed/[0-9]+$", "/feed/12", true),
            (r"^/feed/[0-9]+$", "/feed/12/x", false),
            (r"^/feed/\d+$", "/feed/", false),
            (r"\.(css|js)$", "/a/b.css", true),
            (r"\.(css|js)$", "/a/b.json", false),
            (r"^/(?:blog|news)/[^/]+$", "/news/hello", true),
            (r"^/(?:blog|news)/[^/]+$", "/news/a/b", false),
            (r"^/p/\w{3}-\d{2,4}$", "/p/abc-123", true),
            (r"^/p/\w{3}-\d{2,4}$", "/p/abc-12345", false),
            (r"colou?r", "/the-colour", true),
            (r"colou?r", "/the-color", true),
            (r"^a*$", "", true),
            (r"^(a|ab)(c|bcd)$", "abcd", true),
            (r"^[a-c-]+$", "a-b-c", true),
            (r"^[^a-z]+$", "/123", true),
            (r"x", "/abc", false),
            (r"^/api/v[12]/", "/api/v2/cart", true),
            (r"^/(a+)+b$", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(m(p, t), want, "{p} on {t}");
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in ["(", ")", "[a-", "*a", "a{2", "a{3,1}", r"\p{L}", "a*?", "(?=x)", "^*", &"a".repeat(600)] {
            assert!(Regex::new(p).is_err(), "{p}");
        }
    }
}
