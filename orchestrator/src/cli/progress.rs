//! Showing a launch while it runs: one progress bar per launch wave on a terminal, event lines
//! otherwise. The library reports through its `Observer` trait; this is the CLI's observer.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rehost::app::App;
use rehost::launch::stack::{self, EventView, Notice, Observer};
use rehost::template::{Names, Template};

use crate::cli::print;

/// Writes notices and event lines to `err`; draws bars instead of event lines on a terminal.
pub struct Progress<'a> {
    err: &'a mut dyn Write,
    bars: Option<Bars>,
    terminal: bool,
}

struct Bars {
    bars: Vec<ProgressBar>,
    wave_of: BTreeMap<String, usize>,
    _multi: MultiProgress,
}

impl<'a> Progress<'a> {
    /// Bars when standard error is a terminal, lines otherwise.
    pub fn new(err: &'a mut dyn Write) -> Self {
        Progress {
            err,
            bars: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Always lines (terminate, tests).
    pub fn lines(err: &'a mut dyn Write) -> Self {
        Progress {
            err,
            bars: None,
            terminal: false,
        }
    }
}

impl Bars {
    fn new(app: &App, template: &Template) -> Bars {
        let multi = MultiProgress::new();
        let mut wave_of = BTreeMap::new();
        let mut bars = Vec::new();
        for (i, wave) in app.graph.waves().iter().enumerate() {
            let mut count = 0;
            for &g in wave {
                let group = &app.groups[g];
                let mut ids: Vec<String> = group
                    .servers
                    .iter()
                    .map(|&s| app.servers[s].logical_id.clone())
                    .collect();
                if let Some(gate) = template.gate(g) {
                    ids.push(gate.gate.clone());
                    ids.push(gate.handle.clone());
                }
                // Nested: the group's child stack, or its parts.
                ids.push(Names::nested_stack(&group.logical_stem));
                ids.extend(
                    (1..=group.servers.len())
                        .map(|k| Names::nested_stack_part(&group.logical_stem, k)),
                );
                for id in ids.into_iter().filter(|id| template.has_resource(id)) {
                    wave_of.insert(id, i);
                    count += 1;
                }
            }
            let names: Vec<&str> = wave.iter().map(|&g| app.groups[g].name.as_str()).collect();
            let bar = multi.add(ProgressBar::new(count));
            bar.set_style(
                ProgressStyle::with_template("wave {prefix:>2} {bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix((i + 1).to_string());
            bar.set_message(names.join(", "));
            bars.push(bar);
        }
        Bars {
            bars,
            wave_of,
            _multi: multi,
        }
    }
}

// Progress is best effort: a closed standard error must not fail the launch it reports on.
impl Observer for Progress<'_> {
    fn deploying(&mut self, app: &App, template: &Template) {
        if self.terminal {
            self.bars = Some(Bars::new(app, template));
        }
    }

    fn notice(&mut self, notice: &Notice) {
        let _ = print::notice(self.err, notice);
    }

    fn warning(&mut self, warning: &str) {
        let _ = print::warning(self.err, warning);
    }

    fn event(&mut self, e: &EventView) {
        let Some(Bars { bars, wave_of, .. }) = &self.bars else {
            let _ = print::event(self.err, e);
            return;
        };
        if let Some(&w) = wave_of.get(&e.logical_id) {
            if stack::is_done(&e.status) {
                bars[w].inc(1);
            }
            if stack::is_failure(&e.status) {
                bars[w].set_message(format!("{} {}", e.logical_id, e.status.as_str()));
            }
        }
    }
}
