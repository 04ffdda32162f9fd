//! `synod bench report`: turns the raw results of `bench/compare.sh` into BENCHMARKS.md and
//! its plots.
//!
//! ```text
//! synod bench report --results bench/results --out BENCHMARKS.md --plots bench
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::markdown::{self, Plots};
use super::plots;
use super::results::Results;

/// Flags of `synod bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results directory that bench/compare.sh filled.
    #[arg(long, default_value = "bench/results")]
    pub results: PathBuf,
    /// The document to write.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The directory to draw the PNG plots into; the document links them relative to itself.
    #[arg(long, default_value = "bench")]
    pub plots: PathBuf,
    /// Markdown included as the document's "Observations" section, if the file exists.
    #[arg(long, default_value = "bench/observations.md")]
    pub notes: PathBuf,
    /// The TrueType or OpenType font for the plots' text.
    #[arg(long, default_value = plots::DEFAULT_FONT)]
    pub font: PathBuf,
}

/// Loads the results, draws the plots and writes the document.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let results = Results::load(&args.results)?;
    plots::load_font(&args.font)?;
    let files = plots::draw_all(&results, &args.plots)?;
    let notes = match std::fs::read_to_string(&args.notes) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.notes.display())),
    };
    let document_dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let plots = Plots {
        link_dir: relative_link(document_dir, &args.plots),
        files,
    };
    let text = markdown::render(&results, &plots, notes.as_deref());
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "synod bench report: wrote {} and {} plots in {}",
        args.out.display(),
        plots.files.len(),
        args.plots.display()
    );
    Ok(())
}

/// The path of `target` as a link from a document in `from`: relative if `target` is inside
/// `from`, absolute otherwise.
fn relative_link(from: &Path, target: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, target) = (absolute(from), absolute(target));
    let link = match target.strip_prefix(&from) {
        Ok(inside) if inside.as_os_str().is_empty() => PathBuf::from("."),
        Ok(inside) => inside.to_path_buf(),
        Err(_) => target,
    };
    link.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_linked_relative_to_the_document() {
        assert_eq!(relative_link(Path::new("."), Path::new("bench")), "bench");
        assert_eq!(relative_link(Path::new("/a"), Path::new("/a/b/c")), "b/c");
        assert_eq!(relative_link(Path::new("/a"), Path::new("/a")), ".");
        assert_eq!(relative_link(Path::new("/a"), Path::new("/x/y")), "/x/y");
    }
}
