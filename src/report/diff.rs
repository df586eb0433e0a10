//! Terminal output for `barkctl diff`: coloured on a TTY, plain otherwise.
