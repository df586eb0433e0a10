//! Handler tests: each handler is called with API Gateway WebSocket or DynamoDB stream
//! event fixtures (tests/fixtures), against a moto server and a local management API.

mod broadcast;
mod common;
mod connect;
mod disconnect;
mod message;
mod schemas;
mod stream;
mod sweeper;
