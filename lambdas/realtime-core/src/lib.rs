//! Shared code of the realtime handlers.
