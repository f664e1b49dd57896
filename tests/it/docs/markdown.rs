//! Reading the documentation: the pages (`README.md` and `docs/*.md`), their
//! fenced code blocks, the commands and shown output of `console` blocks,
//! their links and their headings' anchors.

use std::path::{Path, PathBuf};

/// The repository's root (the root package's directory).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One page of documentation.
pub struct Page {
    /// Its path from the repository's root, such as `docs/faults.md`.
    pub path: String,
    /// Its text.
    pub text: String,
}

impl Page {
    /// The page at `path` (from the root).
    pub fn read(path: &str) -> Page {
        let text = std::fs::read_to_string(root().join(path))
            .unwrap_or_else(|e| panic!("read {path}: {e}"));
        Page {
            path: path.to_owned(),
            text,
        }
    }

    /// The fenced code blocks, in order.
    pub fn blocks(&self) -> Vec<Block> {
        let mut blocks = Vec::new();
        let mut open: Option<Block> = None;
        for (i, line) in self.text.lines().enumerate() {
            match &mut open {
                None => {
                    if let Some(info) = line.strip_prefix("```") {
                        let mut attrs = info.split(',').map(|a| a.trim().to_owned());
                        open = Some(Block {
                            page: self.path.clone(),
                            line: i + 1,
                            lang: attrs.next().unwrap_or_default(),
                            attrs: attrs.filter(|a| !a.is_empty()).collect(),
                            body: String::new(),
                        });
                    }
                }
                Some(block) => {
                    if line.trim_end() == "```" {
                        blocks.extend(open.take());
                    } else {
                        block.body.push_str(line);
                        block.body.push('\n');
                    }
                }
            }
        }
        assert!(
            open.is_none(),
            "{}: a code block is never closed",
            self.path
        );
        blocks
    }

    /// The lines outside code blocks, with their numbers (from 1).
    fn outside_blocks(&self) -> Vec<(usize, &str)> {
        let mut in_block = false;
        let mut lines = Vec::new();
        for (i, line) in self.text.lines().enumerate() {
            if line.starts_with("```") {
                in_block = !in_block;
            } else if !in_block {
                lines.push((i + 1, line));
            }
        }
        lines
    }

    /// The text outside code blocks and inline code, line by line (line
    /// numbers from 1), for links and prose checks.
    pub fn prose(&self) -> Vec<(usize, String)> {
        self.outside_blocks()
            .into_iter()
            // Inline code spans are not prose (their text may look like links).
            .map(|(number, line)| (number, line.split('`').step_by(2).collect()))
            .collect()
    }

    /// The anchors of the page's headings, as GitHub makes them.
    pub fn anchors(&self) -> Vec<String> {
        self.outside_blocks()
            .into_iter()
            .filter(|(_, line)| line.starts_with('#'))
            .map(|(_, line)| anchor(&line.trim_start_matches('#').replace('`', "")))
            .collect()
    }

    /// The targets of the page's links, `[text](target)` and `<url>`, with
    /// their line numbers.
    pub fn links(&self) -> Vec<(usize, String)> {
        let mut links = Vec::new();
        for (number, line) in self.prose() {
            let mut rest = line.as_str();
            while let Some(at) = rest.find("](") {
                rest = &rest[at + 2..];
                if let Some(end) = rest.find(')') {
                    links.push((number, rest[..end].to_owned()));
                }
            }
            let mut rest = line.as_str();
            while let Some(at) = rest.find("<http") {
                rest = &rest[at + 1..];
                if let Some(end) = rest.find('>') {
                    links.push((number, rest[..end].to_owned()));
                }
            }
        }
        links
    }
}

/// Every page: the README and `docs/*.md`, in a stable order.
pub fn pages() -> Vec<Page> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("the docs folder")
        .map(|entry| entry.expect("a docs entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    paths.sort();
    let mut pages = vec![Page::read("README.md")];
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        pages.push(Page::read(&format!("docs/{name}")));
    }
    pages
}

/// A heading's anchor: lower case, punctuation dropped, spaces to hyphens.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The page it is on.
    pub page: String,
    /// The line of its opening fence, from 1.
    pub line: usize,
    /// Its language (`rust`, `console`, `sh`, …).
    pub lang: String,
    /// What follows the language in the info string (`no_run`, …).
    pub attrs: Vec<String>,
    /// Its text, each line ending in `\n`.
    pub body: String,
}

impl Block {
    /// `page:line`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.page, self.line)
    }

    /// The commands of a `console` block (lines after `$ `, with `\`
    /// continuations) or of a `sh` block (every line that is not blank or
    /// a comment), each with the output shown after it (none in `sh`).
    pub fn commands(&self) -> Vec<Command> {
        let console = self.lang == "console";
        let mut commands: Vec<Command> = Vec::new();
        let mut continued = false;
        for (i, line) in self.body.lines().enumerate() {
            let number = self.line + 1 + i;
            if continued {
                let command = commands.last_mut().expect("a command to continue");
                command.text.push('\n');
                command.text.push_str(line);
                continued = line.ends_with('\\');
                continue;
            }
            let text = if console {
                line.strip_prefix("$ ")
            } else if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            } else {
                Some(line)
            };
            match text {
                Some(text) => {
                    commands.push(Command {
                        at: format!("{}:{number}", self.page),
                        text: text.to_owned(),
                        shown: Vec::new(),
                    });
                    continued = text.ends_with('\\');
                }
                None => match commands.last_mut() {
                    Some(command) => command.shown.push(line.to_owned()),
                    None => panic!(
                        "{}:{number}: output before any command in a console block",
                        self.page
                    ),
                },
            }
        }
        commands
    }
}

/// One command of a block and the output the page shows for it.
#[derive(Debug, Clone)]
pub struct Command {
    /// `page:line` of its first line.
    pub at: String,
    /// The command, continuation lines included (joined with `\` and a newline).
    pub text: String,
    /// The output shown after it, line by line; `...` stands for any lines.
    pub shown: Vec<String>,
}

/// Whether `actual` is what `shown` shows: line by line, where a `...` line
/// stands for any number of lines.
pub fn shows(shown: &[String], actual: &[String]) -> bool {
    match shown.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| shows(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, more)| line == first && shows(rest, more)),
    }
}
