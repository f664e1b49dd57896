//! Splitting a documented shell command into words, as a POSIX shell
//! would: quotes, backslashes, `$NAME` and `$(command)`, a trailing `&`.
//! Anything else a shell would treat specially (pipes, redirections, `;`,
//! `&&`) is refused, so a command this harness cannot run faithfully fails
//! instead of being half-understood.

/// A piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text taken as it is.
    Text(String),
    /// `$NAME` (outside single quotes).
    Var(String),
    /// `$(command)`.
    Subst(String),
}

/// One word: its pieces, concatenated once expanded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word(pub Vec<Part>);

impl Word {
    /// The word's text, if it has no expansion in it.
    pub fn literal(&self) -> Option<String> {
        self.0
            .iter()
            .map(|part| match part {
                Part::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn push_char(&mut self, c: char) {
        match self.0.last_mut() {
            Some(Part::Text(text)) => text.push(c),
            _ => self.0.push(Part::Text(c.to_string())),
        }
    }
}

/// The words of `command` (continuation lines included), and whether it
/// ends in `&` (runs in the background).
pub fn split(command: &str) -> Result<(Vec<Word>, bool), String> {
    let text = command.replace("\\\n", " ");
    let mut chars = text.chars().peekable();
    let mut words = Vec::new();
    let mut word = Word::default();
    let mut started = false;
    let mut background = false;
    while let Some(c) = chars.next() {
        if background && !c.is_whitespace() {
            return Err("text after `&`".into());
        }
        match c {
            ' ' | '\t' | '\n' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '\'' {
                        closed = true;
                        break;
                    }
                    word.push_char(c);
                }
                if !closed {
                    return Err("an unclosed single quote".into());
                }
                // An empty '' is still a word.
                if word.0.is_empty() {
                    word.0.push(Part::Text(String::new()));
                }
            }
            '"' => {
                started = true;
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push_char(e),
                            Some(other) => {
                                word.push_char('\\');
                                word.push_char(other);
                            }
                            None => return Err("a backslash at the end".into()),
                        },
                        '$' => dollar(&mut chars, &mut word)?,
                        '`' => return Err("backquote substitution".into()),
                        other => word.push_char(other),
                    }
                }
                if !closed {
                    return Err("an unclosed double quote".into());
                }
                if word.0.is_empty() {
                    word.0.push(Part::Text(String::new()));
                }
            }
            '\\' => {
                started = true;
                match chars.next() {
                    Some(c) => word.push_char(c),
                    None => return Err("a backslash at the end".into()),
                }
            }
            '$' => {
                started = true;
                dollar(&mut chars, &mut word)?;
            }
            '&' if !started && chars.peek().is_none_or(|c| c.is_whitespace()) => {
                background = true;
            }
            '|' | ';' | '<' | '>' | '&' | '`' | '(' | ')' | '*' | '?' | '~' => {
                return Err(format!("the shell syntax `{c}`"));
            }
            other => {
                started = true;
                word.push_char(other);
            }
        }
    }
    if started {
        words.push(word);
    }
    if chars.next().is_some() {
        return Err("unparsed text".into());
    }
    Ok((words, background))
}

/// After a `$`: a variable name or a `$(…)` substitution.
fn dollar(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    word: &mut Word,
) -> Result<(), String> {
    if chars.peek() == Some(&'(') {
        chars.next();
        let mut depth = 1;
        let mut inner = String::new();
        for c in chars.by_ref() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        word.0.push(Part::Subst(inner));
                        return Ok(());
                    }
                }
                _ => {}
            }
            inner.push(c);
        }
        return Err("an unclosed $(".into());
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
            chars.next();
        } else {
            break;
        }
    }
    if name.is_empty() {
        return Err("a `$` that names nothing".into());
    }
    word.0.push(Part::Var(name));
    Ok(())
}

/// `NAME=…` at the start of a word: the name and the value's pieces.
pub fn assignment(word: &Word) -> Option<(String, Word)> {
    let Some(Part::Text(first)) = word.0.first() else {
        return None;
    };
    let (name, rest) = first.split_once('=')?;
    let valid = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return None;
    }
    let mut value = vec![Part::Text(rest.to_owned())];
    value.extend(word.0[1..].iter().cloned());
    Some((name.to_owned(), Word(value)))
}

#[test]
fn words_are_split_as_a_shell_splits_them() {
    let (words, background) =
        split("A=1 curl -s 'a b' \"x $Y z\" \\\n  -d '{\"q\": \"\\\"\"}' $(cmd -n 1) &")
            .expect("parses");
    assert!(background);
    let literal: Vec<_> = words.iter().map(Word::literal).collect();
    assert_eq!(
        literal[..4],
        [
            Some("A=1".into()),
            Some("curl".into()),
            Some("-s".into()),
            Some("a b".into())
        ]
    );
    assert_eq!(
        words[4].0,
        [
            Part::Text("x ".into()),
            Part::Var("Y".into()),
            Part::Text(" z".into())
        ]
    );
    assert_eq!(literal[6], Some(r#"{"q": "\""}"#.into()));
    assert_eq!(words[7].0, [Part::Subst("cmd -n 1".into())]);
    for refused in ["a | b", "a > f", "a; b", "a && b", "ls *.md"] {
        assert!(split(refused).is_err(), "{refused}");
    }
}
