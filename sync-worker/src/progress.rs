//! Progress of a long operator command: a bar on a terminal, otherwise a line on stderr every
//! few seconds, so that a command run from a script or a log shows it is alive.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[cfg(feature = "progress")]
use indicatif::{ProgressBar, ProgressStyle};

/// How often a line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// The progress of one command.
#[derive(Debug)]
pub(crate) struct Progress {
    shown: Shown,
    label: String,
    total: u64,
}

#[derive(Debug)]
enum Shown {
    Hidden,
    #[cfg(feature = "progress")]
    Bar(ProgressBar),
    Lines {
        last: Instant,
    },
}

impl Progress {
    /// Progress of `label` towards `total` (0 when unknown); nothing is shown when `quiet`.
    pub(crate) fn new(label: &str, total: u64, quiet: bool) -> Self {
        let shown = if quiet {
            Shown::Hidden
        } else if cfg!(feature = "progress") && std::io::stderr().is_terminal() {
            Self::bar(total)
        } else {
            Shown::Lines {
                last: Instant::now(),
            }
        };
        Progress {
            shown,
            label: label.to_owned(),
            total,
        }
    }

    #[cfg(not(feature = "progress"))]
    fn bar(_: u64) -> Shown {
        Shown::Hidden
    }

    #[cfg(feature = "progress")]
    fn bar(total: u64) -> Shown {
        let bar = ProgressBar::new(total);
        bar.set_style(Self::style(total));
        Shown::Bar(bar)
    }

    /// A bar towards a known total, a spinner otherwise.
    #[cfg(feature = "progress")]
    fn style(total: u64) -> ProgressStyle {
        let template = if total > 0 {
            "{bar:40} {pos}/{len} {msg} ({eta} left)"
        } else {
            "{spinner} {pos} {msg}"
        };
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
    }

    /// Sets the total, once it is known.
    pub(crate) fn set_total(&mut self, total: u64) {
        if total == self.total {
            return;
        }
        self.total = total;
        #[cfg(feature = "progress")]
        if let Shown::Bar(bar) = &self.shown {
            bar.set_style(Self::style(total));
            bar.set_length(total);
        }
    }

    /// `done` of the total so far, with a short `detail`.
    pub(crate) fn set(&mut self, done: u64, detail: &str) {
        match &mut self.shown {
            Shown::Hidden => {}
            #[cfg(feature = "progress")]
            Shown::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(detail.to_owned());
            }
            Shown::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line(done, detail));
                }
            }
        }
    }

    fn line(&self, done: u64, detail: &str) -> String {
        let of = if self.total > 0 {
            format!("{done}/{}", self.total)
        } else {
            done.to_string()
        };
        format!("{}: {of} {detail}", self.label)
    }

    /// Clears the bar, or writes the last line.
    pub(crate) fn finish(self, done: u64, detail: &str) {
        match self.shown {
            Shown::Hidden => {}
            #[cfg(feature = "progress")]
            Shown::Bar(bar) => bar.finish_and_clear(),
            Shown::Lines { .. } => eprintln!("{}", self.line(done, detail)),
        }
    }
}
