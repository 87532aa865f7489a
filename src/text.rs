//! Untrusted text on its way to a terminal or a log.
//!
//! Certificate subjects, CNs, file names and the IDs a network client sends
//! are attacker-controlled. Printed raw, a control character in them can
//! move the cursor, recolour the screen or forge a log line. Every such
//! string goes through [`escape`] before it reaches text output or a log;
//! JSON output stays exact (serde_json escapes control characters itself).

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) and every Unicode
/// bidirectional-override or invisible formatting character written as a
/// Rust-style escape (`\u{1b}`, `\n`, `\t`); printable text, non-ASCII
/// letters included, is kept as it is. Borrows when nothing needs escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        // Bidirectional controls (Trojan Source) and zero-width formatting.
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            escape("sensor-thl-002 Ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(escape("line\nforged"), "line\\nforged");
        assert_eq!(escape("\u{9b}x"), "\\u{9b}x");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape("tab\there"), "tab\\there");
    }
}
