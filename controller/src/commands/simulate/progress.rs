//! The progress bar `simulate` shows on a terminal (nothing otherwise), fed with the
//! mock's routes present; every update is also a `--plot` sample.

use std::sync::Arc;

use super::plot::Timeline;

/// A progress bar on a terminal, nothing otherwise.
pub struct Progress(Option<indicatif::ProgressBar>, Option<Arc<Timeline>>);

impl Progress {
    pub fn new(interactive: bool, total: u64) -> Self {
        if !interactive {
            return Progress(None, None);
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} routes {pos}/{len} [{bar:40}] {elapsed_precise}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress(Some(bar), None)
    }

    /// Also record every update (the mock's routes present) for `--plot`.
    pub fn with_timeline(mut self, timeline: Option<Arc<Timeline>>) -> Self {
        self.1 = timeline;
        self
    }

    pub fn update(&self, present: u64) {
        if let Some(t) = &self.1 {
            t.sample(present);
        }
        if let Some(b) = &self.0 {
            b.set_position(present);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
