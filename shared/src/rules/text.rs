//! Text people read: what a string input value may hold, and how text that
//! still holds something invisible is shown (e-mail, console, `trigger-ops`).
//!
//! A value reaches a CodePipeline variable, the on-call e-mail and the
//! operators' screens. A control character, a bidi control (U+202E turns
//! the text after it around), a zero-width or other format character, or a
//! value not in Unicode NFC (two spellings of one letter) can make a value
//! read as something it is not (UTS #39; "Trojan Source", CVE-2021-42574).
//! Such values are refused whatever the pattern says; text that holds one
//! anyway (an older record) is shown with each such character escaped.

use std::borrow::Cow;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt,
/// Unicode 16.0): what a renderer shows as nothing at all, such as U+3164
/// HANGUL FILLER, U+FFA0, U+034F and the variation selectors. Inclusive
/// ranges, in order.
const DEFAULT_IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

fn is_default_ignorable(c: char) -> bool {
    let c = u32::from(c);
    DEFAULT_IGNORABLE
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Blanks that read as an ordinary space, or as nothing: every space
/// separator (Zs) but U+0020 (U+00A0 NO-BREAK SPACE, U+3000, …) and U+2800
/// BRAILLE PATTERN BLANK.
fn is_blank_look_alike(c: char) -> bool {
    c == '\u{2800}' || (c != ' ' && c.general_category() == GeneralCategory::SpaceSeparator)
}

/// Controls (Cc), format characters (Cf: bidi controls, zero-width
/// characters, the soft hyphen, tags), line and paragraph separators (Zl,
/// Zp), private-use characters (Co), default-ignorable code points and
/// blank look-alikes: nothing a person reading the text could tell apart.
fn is_unreadable(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
    ) || is_default_ignorable(c)
        || is_blank_look_alike(c)
}

/// Why a value is not plain, readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// The first invisible or control character and its 1-based place.
    Invisible { character: char, place: usize },
    /// The value is not in Unicode NFC (composed) form.
    NotComposed,
}

impl std::fmt::Display for Unreadable {
    /// Names the character by code point, never repeats the value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invisible { character, place } => write!(
                f,
                "must not contain control, bidi, zero-width, default-ignorable or other \
                 invisible characters, nor a space other than U+0020 \
                 (U+{:04X} at character {place})",
                u32::from(*character)
            ),
            Self::NotComposed => f.write_str(
                "must be in Unicode NFC (composed) form: the same letters typed as one \
                 character each",
            ),
        }
    }
}

/// `None` when `text` is plain, readable text: no invisible character and in NFC.
pub fn unreadable(text: &str) -> Option<Unreadable> {
    if let Some((place, character)) = text
        .chars()
        .zip(1..)
        .find_map(|(c, place)| is_unreadable(c).then_some((place, c)))
    {
        return Some(Unreadable::Invisible { character, place });
    }
    if !unicode_normalization::is_nfc(text) {
        return Some(Unreadable::NotComposed);
    }
    None
}

/// `text` with every invisible or control character written as `\u{202E}`
/// (and a backslash as it is): what a person reads sees every character.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unreadable) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unreadable(c) {
            shown.push_str(&format!("\\u{{{:X}}}", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// Each line of `text` made [`printable`], its line breaks kept.
pub fn printable_lines(text: &str) -> String {
    text.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invisible_characters_are_named_by_code_point_and_place() {
        for (text, code) in [
            ("main\r\nx", '\r'),
            ("ma\u{202E}in", '\u{202E}'),
            ("ma\u{200B}in", '\u{200B}'),
            ("ma\u{2066}in", '\u{2066}'),
            ("ma\u{00AD}in", '\u{00AD}'),
            ("ma\u{2028}in", '\u{2028}'),
            ("ma\u{E000}in", '\u{E000}'),
            ("ma\u{FEFF}in", '\u{FEFF}'),
            ("ma\tin", '\t'),
            ("ma\u{E0041}in", '\u{E0041}'),
        ] {
            let found = unreadable(text).expect("refused");
            let Unreadable::Invisible { character, place } = found.clone() else {
                panic!("{text:?} should be refused for {code:?}, got {found:?}");
            };
            assert_eq!(character, code);
            assert_eq!(place, if code == '\r' { 5 } else { 3 });
            let detail = found.to_string();
            assert!(
                detail.contains(&format!("U+{:04X}", u32::from(code))),
                "{detail}"
            );
            assert!(!detail.contains(text), "the value is never repeated");
        }
    }

    /// The look-alikes that each became a run of their own behind a loose
    /// pattern (`.{1,40}`): refused, and escaped wherever they are shown.
    #[test]
    fn default_ignorables_and_blank_look_alikes_are_refused_and_escaped() {
        for code in [
            '\u{3164}',
            '\u{FFA0}',
            '\u{FE0F}',
            '\u{034F}',
            '\u{2800}',
            '\u{00A0}',
            '\u{115F}',
            '\u{180B}',
            '\u{3000}',
            '\u{2007}',
            '\u{E0100}',
            '\u{1D173}',
            '\u{061C}',
        ] {
            let text = format!("v{code}1");
            assert_eq!(
                unreadable(&text),
                Some(Unreadable::Invisible {
                    character: code,
                    place: 2
                }),
                "U+{:04X}",
                u32::from(code)
            );
            assert_eq!(
                printable(&text),
                format!("v\\u{{{:X}}}1", u32::from(code)),
                "U+{:04X}",
                u32::from(code)
            );
        }
        // Visible neighbours stay: the space, a Hangul letter, an emoji
        // without a selector, Braille dots.
        for fine in ["a b", "\u{314F}", "\u{1F680}", "\u{2801}"] {
            assert_eq!(unreadable(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn the_default_ignorable_table_is_sorted_and_disjoint() {
        for pair in DEFAULT_IGNORABLE.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
        assert!(is_default_ignorable('\u{E0FFF}') && !is_default_ignorable('\u{E1000}'));
        assert!(is_default_ignorable('\u{2065}') && !is_default_ignorable('\u{2070}'));
    }

    #[test]
    fn decomposed_text_is_refused_and_composed_text_accepted() {
        assert_eq!(unreadable("cafe\u{0301}"), Some(Unreadable::NotComposed));
        assert_eq!(unreadable("caf\u{e9}"), None);
        assert_eq!(unreadable("release-1.2 über 東京 🚀"), None);
        assert_eq!(unreadable(""), None);
    }

    #[test]
    fn printable_escapes_only_what_cannot_be_seen() {
        assert_eq!(printable("plain text: ü"), "plain text: ü");
        assert_eq!(
            printable("a\u{202E}b\u{200B}c\nd"),
            "a\\u{202E}b\\u{200B}c\\u{A}d"
        );
        assert_eq!(printable_lines("a\u{7}\nb"), "a\\u{7}\nb");
    }

    fn any_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range(' ', '~'),
            proptest::char::any(),
            prop::sample::select(vec![
                '\r', '\n', '\u{202E}', '\u{200B}', '\u{2066}', '\u{FEFF}'
            ]),
        ]
    }

    proptest! {
        #[test]
        fn accepted_text_has_nothing_invisible_and_printable_leaves_it_alone(
            text in proptest::collection::vec(any_char(), 0..40).prop_map(|c| c.into_iter().collect::<String>())
        ) {
            let has_invisible = text.chars().any(is_unreadable);
            match unreadable(&text) {
                None => {
                    prop_assert!(!has_invisible);
                    prop_assert!(unicode_normalization::is_nfc(&text));
                    prop_assert_eq!(printable(&text).into_owned(), text.clone());
                }
                Some(Unreadable::Invisible { .. }) => prop_assert!(has_invisible),
                Some(Unreadable::NotComposed) => prop_assert!(!unicode_normalization::is_nfc(&text)),
            }
            let shown = printable(&text);
            prop_assert!(!shown.chars().any(is_unreadable), "{:?}", shown);
            prop_assert!(!shown.contains('\n'));
        }

        /// Over the whole code-point range: a character between two
        /// letters is accepted exactly when it is none of the kinds refused,
        /// and what is shown of it is the character or its escape.
        #[test]
        fn every_code_point_is_accepted_or_refused_by_its_kind(c in proptest::char::any()) {
            let text = format!("a{c}b");
            let refused_kind = is_unreadable(c);
            // The oracle, written as a list of the kinds refused (Cc, Cf,
            // Zl, Zp, Co, and Zs but the plain space).
            let kinds_refused = [
                GeneralCategory::Control, GeneralCategory::Format,
                GeneralCategory::LineSeparator, GeneralCategory::ParagraphSeparator,
                GeneralCategory::PrivateUse, GeneralCategory::SpaceSeparator,
            ];
            let of_a_kind_refused = kinds_refused.contains(&c.general_category()) && c != ' ';
            prop_assert_eq!(
                refused_kind,
                of_a_kind_refused || is_default_ignorable(c) || c == '\u{2800}'
            );
            match unreadable(&text) {
                Some(Unreadable::Invisible { character, place }) => {
                    prop_assert!(refused_kind);
                    prop_assert_eq!((character, place), (c, 2));
                }
                Some(Unreadable::NotComposed) => prop_assert!(!refused_kind),
                None => prop_assert!(!refused_kind),
            }
            let shown = printable(&text).into_owned();
            if refused_kind {
                prop_assert_eq!(shown, format!("a\\u{{{:X}}}b", u32::from(c)));
            } else {
                prop_assert_eq!(shown, text);
            }
        }
    }
}
