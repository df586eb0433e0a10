//! A local API Gateway WebSocket API (built in `barkctl dev`, part 2).
