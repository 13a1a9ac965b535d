//! An error at a place in a TOML file (the configuration), carried up to the parser, which
//! turns the span into a line number.

use toml::Spanned;

/// A problem found after parsing, at a byte span of the text.
#[derive(Debug)]
pub struct SpannedError {
    /// Byte range in the configuration text.
    pub span: std::ops::Range<usize>,
    /// What is wrong.
    pub reason: String,
}

impl SpannedError {
    /// An error at `value`'s place in the file.
    pub fn at<T>(value: &Spanned<T>, reason: impl std::fmt::Display) -> Self {
        Self { span: value.span(), reason: reason.to_string() }
    }
}
