//! Progress bars (indicatif, on stderr, drawn only when stderr is a terminal) and a
//! `tracing` writer that pauses them while a log line is printed.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stages::Progress;

fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A node's progress bar.
pub struct NodeBar {
    bar: ProgressBar,
    node: String,
}

impl NodeBar {
    /// A bar for `node`, shown when `visible` (hidden bars cost nothing).
    pub fn new(node: &str, visible: bool) -> Self {
        let bar = if visible {
            let bar = multi().add(ProgressBar::new_spinner());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed:>5}").expect("valid template"),
        );
        bar.set_message(node.to_string());
        NodeBar {
            bar,
            node: node.to_string(),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for NodeBar {
    fn start(&self, phase: &str, total: u64) {
        self.bar.set_style(
            ProgressStyle::with_template("{msg:28!} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(format!("{}: {phase}", self.node));
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
}

/// A `tracing` writer to stderr that suspends the progress bars around each line.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

pub struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        multi().suspend(|| {
            let _ = std::io::stderr().write_all(&bytes);
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer(Vec::new())
    }
}
