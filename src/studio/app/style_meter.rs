//! The style meter: the composer classifier's verdict on the piece, whole and over time.

use egui::Ui;
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::{STYLE_METER_ERROR, Studio, say_plot, style_meter_caveat};

impl Studio {
    /// The live style meter: the classifier's composer probabilities along the piece.
    pub(super) fn style_panel(&mut self, ui: &mut Ui) {
        let Some(v) = &self.verdict else {
            let failed =
                (self.standing_error.as_deref()).is_some_and(|e| e.starts_with(STYLE_METER_ERROR));
            ui.label(if self.session.score.notes.is_empty() {
                "Style meter: nothing to judge (the piece is empty)"
            } else if failed {
                "Style meter: no verdict (see the message below)"
            } else {
                "Style meter: listening..."
            });
            return;
        };
        let ranked = v.ranked();
        let summary: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|&c| format!("{} {:.0}%", v.composers[c], 100.0 * v.overall[c]))
            .collect();
        // A verdict of the piece before the last change is shown until the new one comes.
        let updating = if self.verdict_id == self.style_id {
            ""
        } else {
            " (updating...)"
        };
        let label = ui.label(format!(
            "Style meter (composer classifier): {}{updating}",
            summary.join(", ")
        ));
        if let Some(c) = &self.others.classifier {
            label.on_hover_text(style_meter_caveat(&c.manifest));
        }
        // Bars on the x axis, as on the roll's ruler: each window's verdict sits at its centre,
        // and the axis spans the whole piece.
        let score = &self.session.score;
        let bar_map = score.bar_map();
        let bar = |step: f64| bar_map.position(step);
        let centre = v.window as f64 / 2.0;
        let curves: Vec<(&str, Vec<[f64; 2]>)> = (ranked.iter().take(3))
            .map(|&c| {
                let points = (v.windows.iter())
                    .map(|(start, p)| [bar(*start as f64 + centre), p[c] as f64])
                    .collect();
                (v.composers[c].as_str(), points)
            })
            .collect();
        let shown = Plot::new("style-meter")
            .legend(Legend::default())
            .include_y(0.0)
            .include_y(1.0)
            .include_x(bar(0.0))
            .include_x(bar(score.steps() as f64))
            .allow_scroll(false)
            .show(ui, |plot| {
                // Solid, dashed, dotted: the three composers told apart by more than colour.
                let styles = [
                    egui_plot::LineStyle::Solid,
                    egui_plot::LineStyle::dashed_dense(),
                    egui_plot::LineStyle::dotted_dense(),
                ];
                for ((name, points), style) in curves.iter().zip(styles) {
                    plot.line(Line::new(*name, PlotPoints::from(points.clone())).style(style));
                }
            });
        say_plot(
            &shown,
            "Style meter, probability by composer",
            "bar",
            &curves,
        );
    }
}
