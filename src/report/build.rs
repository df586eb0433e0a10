//! Terminal output for `barkctl build`.
