//! `dc-operator status` (and `kubectl dc status`): where every environment and tenant
//! stands, read from the cluster only. A pure model ([`model`]: resources → a tree with what
//! to do), a pure renderer ([`render`]), and a thin layer that reads the cluster ([`cluster`]).

pub mod advice;
pub mod cluster;
pub mod model;
pub mod render;
#[cfg(test)]
mod tests;

use std::io::Write;

pub use cluster::status;

/// `-o`: a person's tree, the same with every message and detail, or the model for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Wide,
    Json,
    Yaml,
}

/// Where the command writes a view: each frame of `--watch` after a separator (a cleared
/// screen on a terminal, a blank line or `---` otherwise).
pub struct Frames<W: Write> {
    pub out: W,
    pub format: Format,
    pub terminal: bool,
    last: Option<String>,
}

impl<W: Write> Frames<W> {
    pub fn new(out: W, format: Format, terminal: bool) -> Self {
        Frames {
            out,
            format,
            terminal,
            last: None,
        }
    }

    /// Writes `view` unless it is the one written last. Returns whether it wrote.
    pub fn show(&mut self, view: &str) -> std::io::Result<bool> {
        if self.last.as_deref() == Some(view) {
            return Ok(false);
        }
        if self.last.is_some() {
            let separator = match (self.terminal, self.format) {
                // Home, then clear the screen: the new view replaces the old one.
                (true, _) => "\x1b[H\x1b[2J",
                (false, Format::Yaml) => "---\n",
                (false, _) => "\n",
            };
            self.out.write_all(separator.as_bytes())?;
        } else if self.terminal {
            self.out.write_all(b"\x1b[H\x1b[2J")?;
        }
        self.out.write_all(view.as_bytes())?;
        self.out.flush()?;
        self.last = Some(view.to_string());
        Ok(true)
    }
}
