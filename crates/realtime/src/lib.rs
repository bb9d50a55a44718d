//! Redis for Rootcause: what may be lost, kept fast.
//!
//! PostgreSQL is the record of every diagnosis; Redis only carries what can
//! be rebuilt or safely lost (see `docs/architecture/realtime.md`):
//!
//! - WebSocket client sessions shared by gateway and event-relay instances,
//!   with a TTL refreshed on activity ([`SessionManager`]);
//! - live diagnosis events on one Pub/Sub channel per session, published after
//!   the events commit ([`EventPublisher`]) and fanned out to watchers
//!   ([`Subscriber`], [`Subscription`]).
//!
//! Pub/Sub is at-most-once. Every event carries its `seq`, so a watcher that
//! misses some gets a [`Delivery::Gap`] (on a seq jump, a reconnect, or when it
//! falls behind) and replays the missing events from PostgreSQL.
//!
//! ```no_run
//! # async fn demo(session_id: rootcause_diagnosis::SessionId) -> Result<(), rootcause_realtime::RealtimeError> {
//! use futures::StreamExt;
//! use rootcause_realtime::{Delivery, RedisSettings, Subscriber};
//!
//! let settings = RedisSettings::default();
//! let (subscriber, task) = Subscriber::connect(&settings).await?;
//! tokio::spawn(task.run(tokio_util::sync::CancellationToken::new()));
//! let mut live = subscriber.subscribe(session_id, 0).await?;
//! while let Some(delivery) = live.next().await {
//!     match delivery {
//!         Delivery::Event(event) => println!("{} {}", event.seq, event.kind.name()),
//!         Delivery::Gap { last_seen, .. } => {
//!             // read events after `last_seen` from PostgreSQL, send them, then:
//!             // live.advance(last_replayed_seq);
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - `settings`: [`RedisSettings`], embeddable as a service's `redis` section;
//! - `pool`: [`RedisPool`], command connections with timeouts, retry, health check;
//! - `session`: [`SessionManager`] and [`ClientSessionId`];
//! - `publisher`: [`EventPublisher`];
//! - `subscriber`: [`Subscriber`], its background [`SubscriberTask`], [`Subscription`];
//! - `delivery`: [`Delivery`], [`GapReason`] and the per-watcher gap bookkeeping;
//! - `keys`: every key and channel name; `metrics`: every metric; `error`: [`RealtimeError`].

pub mod delivery;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod pool;
pub mod publisher;
pub mod session;
pub mod settings;
pub mod subscriber;

pub use delivery::{Delivery, GapReason};
pub use error::RealtimeError;
pub use keys::Keys;
pub use pool::{Idempotency, RedisPool};
pub use publisher::EventPublisher;
pub use session::{ClientSessionId, SessionManager};
pub use settings::{RedisSettings, SubscriberSettings};
pub use subscriber::{Subscriber, SubscriberTask, Subscription};
