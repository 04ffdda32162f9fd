//! The progress bar on stderr while a benchmark runs.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar on stderr, or nothing: it is hidden when asked (with `--json`) and, by
/// indicatif, whenever stderr is not a terminal, so logs and pipes get no escape codes.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar that draws on stderr if `visible`, or one that draws nothing.
    pub fn new(visible: bool) -> Progress {
        let bar = if visible {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:32}] {msg}")
            .expect("the progress template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar }
    }

    /// Shows `message` beside the bar.
    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Sets how far the bar has come, out of `length`, in whatever unit the run counts
    /// (milliseconds or requests).
    pub fn set_fraction(&self, position: u64, length: u64) {
        self.bar.set_length(length);
        self.bar.set_position(position.min(length));
    }

    /// Removes the bar, before the report is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
