//! Triggers: DynamoDB stream polling and EventBridge schedules.
