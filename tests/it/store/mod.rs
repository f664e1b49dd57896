//! The store against real databases: optimistic concurrency, write-through,
//! typed errors, transactions with retry and cancellation, nested
//! transactions, isolation levels, advisory locks, and streaming.

mod concurrency;
mod crud;
mod errors;
mod isolation;
mod locks;
mod nested;
mod pool;
mod retries;
mod sqlite_busy;
mod stream;
mod transactions;
mod upsert;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use roster::entity::{group, user};
use roster::store::Store;
use sea_orm::ActiveValue::Set;

/// A new user named `name`, through the store.
pub async fn new_user(store: &Store, name: &str) -> user::Model {
    store
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some(name.to_owned())),
            ..Default::default()
        })
        .await
        .expect("insert user")
}

/// A new group with counter `entryYearId = 0`, through the store.
pub async fn new_counter(store: &Store) -> group::Model {
    store
        .insert::<group::Entity>(group::ActiveModel {
            name: Set(Some("counter".to_owned())),
            entry_year_id: Set(Some(0)),
            ..Default::default()
        })
        .await
        .expect("insert group")
}

/// Changes that set a user's name.
pub fn rename(name: &str) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(Some(name.to_owned())),
        ..Default::default()
    }
}

/// Drives `future` for at most `polls` polls; `None` if it was dropped
/// before finishing.
pub async fn poll_at_most<F: Future>(future: F, polls: u32) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut left = polls;
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending if left <= 1 => Poll::Ready(None),
        Poll::Pending => {
            left -= 1;
            Poll::Pending
        }
    })
    .await
}
