//! The Lambda Runtime API on 127.0.0.1 and the function instances behind it.
