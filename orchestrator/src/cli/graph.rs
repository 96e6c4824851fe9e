//! `rehost graph FILE`: launch waves and the critical path, or a mermaid / dot drawing.

use std::path::PathBuf;

use rehost::app::{App, Mode};
use rehost::graph::{GroupView, render_dot, render_mermaid, render_text};

use crate::cli::common::{load_app, write_output};
use crate::cli::io::Io;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Mermaid,
    Dot,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    write_output(None, &drawing(&app, args.format), io.out)
}

/// The launch graph in the chosen format, with the cutover gate timeouts as weights.
pub fn drawing(app: &App, format: Format) -> String {
    let gate = app.gate_minutes(Mode::Cutover);
    let views: Vec<GroupView<'_>> = app
        .groups
        .iter()
        .zip(&gate)
        .map(|(g, &minutes)| GroupView {
            name: &g.name,
            servers: g
                .servers
                .iter()
                .map(|&s| app.servers[s].id.as_str())
                .collect(),
            gate_minutes: minutes,
        })
        .collect();
    match format {
        Format::Text => render_text(&app.name, &app.graph, &views),
        Format::Mermaid => render_mermaid(&app.graph, &views),
        Format::Dot => render_dot(&app.name, &app.graph, &views),
    }
}
