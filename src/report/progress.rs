//! Live progress for deploys: indicatif bars on a TTY, plain event lines otherwise.
