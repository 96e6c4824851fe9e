//! `rehost graph FILE`: launch waves and the critical path, or a mermaid / dot drawing.

use std::path::PathBuf;

use crate::cli::common::{load_app, write_output};
use rehost::app::Mode;
use rehost::graph::{GroupView, render_dot, render_mermaid, render_text};

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

pub fn run(args: Args) -> anyhow::Result<()> {
    let app = load_app(&args.file)?.app;
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
    let text = match args.format {
        Format::Text => render_text(&app.name, &app.graph, &views),
        Format::Mermaid => render_mermaid(&app.graph, &views),
        Format::Dot => render_dot(&app.name, &app.graph, &views),
    };
    write_output(None, &text)
}
