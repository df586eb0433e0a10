//! Pure planning: rendered templates + deployed state -> what happens to each stack.
