//! Every note the studio said this session (its status line shows the last ones, cut to the
//! room there is), kept for the Messages window: read in full, by keyboard or screen reader,
//! and copied (an exported file's path, an error to report).

use std::collections::VecDeque;
use std::time::Instant;

use egui::{RichText, Ui};

/// The most notes kept; the oldest go first.
pub const KEPT: usize = 200;

/// One note as it was said.
#[derive(Debug, Clone)]
pub struct Note {
    /// When it was (last) said.
    pub at: Instant,
    /// Its text, whole.
    pub text: String,
    /// An error, not a plain note.
    pub error: bool,
    /// How many times in a row it was said.
    pub times: usize,
}

/// The notes said this session, oldest first, at most [`KEPT`].
#[derive(Debug, Default)]
pub struct MessageLog {
    notes: VecDeque<Note>,
}

impl MessageLog {
    /// Keeps a note; the same note said again in a row is counted, not repeated.
    pub fn push(&mut self, text: &str, error: bool) {
        let now = Instant::now();
        if let Some(last) = self.notes.back_mut()
            && last.text == text
            && last.error == error
        {
            last.at = now;
            last.times += 1;
            return;
        }
        if self.notes.len() == KEPT {
            self.notes.pop_front();
        }
        self.notes.push_back(Note {
            at: now,
            text: text.to_string(),
            error,
            times: 1,
        });
    }

    /// The notes kept, oldest first.
    pub fn notes(&self) -> impl DoubleEndedIterator<Item = &Note> + ExactSizeIterator {
        self.notes.iter()
    }

    /// Forgets every note.
    pub fn clear(&mut self) {
        self.notes.clear();
    }

    /// The notes as plain text, one a line, oldest first (for the clipboard).
    pub fn to_text(&self, now: Instant) -> String {
        let mut text = String::new();
        for note in &self.notes {
            text.push_str(&line(note, now));
            text.push('\n');
        }
        text
    }

    /// The window's contents: newest first, each whole and wrapped, errors in the theme's
    /// error colour; Copy all and Clear.
    pub fn show(&mut self, ui: &mut Ui) {
        let now = Instant::now();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!self.notes.is_empty(), egui::Button::new("Copy all"))
                .on_hover_text("Copy every note, oldest first, to the clipboard")
                .clicked()
            {
                ui.ctx().copy_text(self.to_text(now));
            }
            if ui
                .add_enabled(!self.notes.is_empty(), egui::Button::new("Clear"))
                .on_hover_text("Forget the notes said so far")
                .clicked()
            {
                self.clear();
            }
        });
        ui.separator();
        if self.notes.is_empty() {
            ui.weak("Nothing said yet.");
            return;
        }
        let error_color = ui.visuals().error_fg_color;
        egui::ScrollArea::vertical().show(ui, |ui| {
            for note in self.notes.iter().rev() {
                let mut text = RichText::new(line(note, now));
                if note.error {
                    text = text.color(error_color);
                }
                ui.add(egui::Label::new(text).wrap());
            }
        });
    }
}

/// A note as one line: how long ago, the text, how many times.
fn line(note: &Note, now: Instant) -> String {
    let ago = ago(now.saturating_duration_since(note.at).as_secs());
    let kind = if note.error { "error: " } else { "" };
    match note.times {
        1 => format!("{ago}: {kind}{}", note.text),
        n => format!("{ago}: {kind}{} ({n} times)", note.text),
    }
}

/// "just now", "5 s ago", "3 min ago", "2 h ago", "3 days ago".
pub(crate) fn ago(seconds: u64) -> String {
    match seconds {
        0..=4 => "just now".into(),
        5..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=172_799 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_notes_and_counts_repeats() {
        let mut log = MessageLog::default();
        log.push("Opened a.mid", false);
        log.push("Opened a.mid", false);
        log.push("a.wav: cannot write it", true);
        let notes: Vec<_> = log.notes().map(|n| (n.text.as_str(), n.times)).collect();
        assert_eq!(notes, [("Opened a.mid", 2), ("a.wav: cannot write it", 1)]);
        let text = log.to_text(Instant::now());
        assert_eq!(
            text,
            "just now: Opened a.mid (2 times)\njust now: error: a.wav: cannot write it\n"
        );
        for k in 0..KEPT + 5 {
            log.push(&format!("note {k}"), false);
        }
        assert_eq!(log.notes().len(), KEPT);
        assert_eq!(log.notes().next().unwrap().text, "note 5");
        assert_eq!(
            log.notes().last().unwrap().text,
            format!("note {}", KEPT + 4)
        );
    }

    #[test]
    fn says_how_long_ago() {
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(42), "42 s ago");
        assert_eq!(ago(185), "3 min ago");
        assert_eq!(ago(7300), "2 h ago");
        assert_eq!(ago(47 * 3600), "47 h ago");
        assert_eq!(ago(3 * 86_400 + 5), "3 days ago");
    }
}
