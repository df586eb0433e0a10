//! Triggers: DynamoDB stream polling and EventBridge schedules.
//!
//! [`run_schedules`] fires the stage's schedule rules at their UTC instants
//! ([`fire_now`] fires one on demand); [`run_mapping`] / [`run_mappings`] poll
//! the streams of event source mappings and invoke their functions with batches.
//! Both report through an [`EventSink`] (they never print) and stop when their
//! shutdown watch turns true or its sender is dropped. [`describe_next`] and
//! [`describe_mapping`] give a startup line per rule and mapping.
//!
//! Files: [`cron`] and [`schedule`] read expressions, [`scheduler`] runs rules;
//! [`stream`] polls, [`stream_batch`] batches, [`stream_delivery`] retries,
//! bisects and drops, [`stream_record`] and [`dynamo_json`] build the event.

pub mod cron;
pub mod dynamo_json;
pub mod events;
pub mod schedule;
pub mod scheduler;
pub mod stream;
pub mod stream_batch;
pub mod stream_delivery;
pub mod stream_record;

pub use cron::{CronError, CronExpr, CronField};
pub use events::{EventSink, OutcomeSummary, TriggerEvent};
pub use schedule::{scheduled_event, Schedule, ScheduleError};
pub use scheduler::{
    describe_next, describe_next_at, fire_at, fire_now, run_schedules, TargetFire,
};
pub use stream::{describe_mapping, run_mapping, run_mapping_with, run_mappings, PollerOptions};
pub use stream_batch::Batcher;
pub use stream_delivery::{deliver, DeliveryConfig, DeliveryReport, UNLIMITED_RETRIES_CAP};
pub use stream_record::{batch_event, StreamRecord};

#[cfg(test)]
mod schedule_tests;
#[cfg(test)]
mod scheduler_tests;
#[cfg(test)]
mod stream_delivery_tests;
#[cfg(test)]
mod stream_moto_tests;
#[cfg(test)]
mod test_support;
