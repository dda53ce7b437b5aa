//! Text that came from outside — an agent's log line, an audit target, a correlation id a
//! producer chose — bounded in size and made safe to print: such text must not be able to
//! exhaust memory or forge lines and terminal escapes in what an operator reads.

use std::borrow::Cow;

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end).into()
}

/// `text` with every control character (line breaks, carriage returns, escape sequences' ESC,
/// and the rest of Unicode's Cc class) written as a `\u{…}` escape, so one line stays one line
/// and a terminal shows the characters instead of obeying them. Tabs are kept.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_marked_and_keeps_characters_whole() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 3);
        assert!(
            cut.starts_with('é') && cut.ends_with("[8 bytes cut]"),
            "{cut}"
        );
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape_control("plain\ttext"), "plain\ttext");
        assert_eq!(
            escape_control("a\nFAKE ENTRY\r\x1b[31mred"),
            "a\\u{a}FAKE ENTRY\\u{d}\\u{1b}[31mred"
        );
        assert_eq!(escape_control("\u{85}"), "\\u{85}");
    }
}
