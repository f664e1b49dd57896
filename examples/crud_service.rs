//! A service that edits users through Roster's store and handles the
//! outcomes of optimistic concurrency the way a user should: when the row
//! changed since the client read it (`Conflict`), re-read it, merge the
//! client's edit if it touches only fields nobody else changed, and report
//! the rest back instead of overwriting someone else's work.
//!
//! Run with `cargo run --example crud_service`. It uses `DATABASE_URL`, or
//! the SQLite file `roster.db` in the working directory, and deletes the
//! user it creates.

use roster::entity::user;
use roster::migrations::{Action, run};
use roster::store::{Error, Store};
use sea_orm::ActiveValue::Set;
use sea_orm::Database;

/// A client's edit of a user's profile: `None` leaves the field alone,
/// `Some(value)` sets it (`Some(None)` clears it).
#[derive(Debug, Default, Clone)]
struct ProfileEdit {
    surname: Option<Option<String>>,
    email: Option<Option<String>>,
}

/// What the service tells its client.
#[derive(Debug)]
enum EditOutcome {
    /// Saved; the row as stored now (keep its `lastchange` for the next edit).
    Saved(user::Model),
    /// Someone else changed the same fields; nothing was written. The client
    /// should show `current` and let its user decide.
    Rejected {
        current: Box<user::Model>,
        fields: Vec<&'static str>,
    },
    /// The user was deleted meanwhile.
    Gone,
}

/// Applies `edit` to the user the client read as `base`.
///
/// On `Conflict` it re-reads the row (the error carries it, no query
/// needed), and retries with the new `lastchange` if every field the client
/// edits still has the value the client saw (or already has the client's
/// value). A few attempts at most: each retry means another writer won.
async fn edit_profile(
    store: &Store,
    base: &user::Model,
    edit: &ProfileEdit,
) -> Result<EditOutcome, Error> {
    const ATTEMPTS: u32 = 5;
    let mut expected = base.lastchange;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let changes = user::ActiveModel {
            surname: edit.surname.clone().map_or(Default::default(), Set),
            email: edit.email.clone().map_or(Default::default(), Set),
            ..Default::default()
        };
        let conflict = match store
            .update::<user::Entity>(base.id, expected, changes)
            .await
        {
            Ok(saved) => return Ok(EditOutcome::Saved(saved)),
            Err(Error::NotFound { .. }) => return Ok(EditOutcome::Gone),
            Err(Error::Conflict(conflict)) => conflict,
            Err(other) => return Err(other),
        };
        let Some(current) = conflict.current::<user::Model>().cloned() else {
            return Ok(EditOutcome::Gone);
        };
        let mut clashes = Vec::new();
        if let Some(mine) = &edit.surname
            && current.surname != base.surname
            && &current.surname != mine
        {
            clashes.push("surname");
        }
        if let Some(mine) = &edit.email
            && current.email != base.email
            && &current.email != mine
        {
            clashes.push("email");
        }
        if !clashes.is_empty() {
            return Ok(EditOutcome::Rejected {
                current: Box::new(current),
                fields: clashes,
            });
        }
        if attempt == ATTEMPTS {
            // Lost every race: give up and let the caller report it.
            return Err(Error::Conflict(conflict));
        }
        // Nobody touched our fields: merge onto the current version.
        expected = current.lastchange;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://roster.db?mode=rwc".into());
    run(&url, Action::Up { steps: None }).await?;
    let store = Store::new(Database::connect(&url).await?);

    let ada = store
        .insert::<user::Entity>(user::ActiveModel {
            name: Set(Some("Ada".into())),
            surname: Set(Some("Byron".into())),
            email: Set(Some("ada@example.org".into())),
            ..Default::default()
        })
        .await?;
    println!("inserted user {} at {}", ada.id, ada.lastchange);

    // Three clients read the same version of Ada.
    let (alice_saw, bob_saw, carol_saw) = (ada.clone(), ada.clone(), ada.clone());

    // Alice changes the email: saved.
    let alice = ProfileEdit {
        email: Some(Some("ada@analytical.engine".into())),
        ..Default::default()
    };
    report("alice", edit_profile(&store, &alice_saw, &alice).await?);

    // Bob, with the old version, changes the surname: a Conflict, but Alice
    // did not touch the surname, so the service merges it.
    let bob = ProfileEdit {
        surname: Some(Some("Lovelace".into())),
        ..Default::default()
    };
    report("bob", edit_profile(&store, &bob_saw, &bob).await?);

    // Carol, with the old version too, changes the email Alice changed:
    // rejected with the stored row, nothing overwritten.
    let carol = ProfileEdit {
        email: Some(Some("countess@lovelace.uk".into())),
        ..Default::default()
    };
    report("carol", edit_profile(&store, &carol_saw, &carol).await?);

    store.delete::<user::Entity>(ada.id, None).await?;
    // Editing a deleted user: reported as gone.
    report("dave", edit_profile(&store, &ada, &bob).await?);
    Ok(())
}

fn report(client: &str, outcome: EditOutcome) {
    match outcome {
        EditOutcome::Saved(row) => println!(
            "{client}: saved: surname {:?}, email {:?}, lastchange {}",
            row.surname, row.email, row.lastchange
        ),
        EditOutcome::Rejected { current, fields } => println!(
            "{client}: rejected, {fields:?} changed by someone else; stored now: surname {:?}, email {:?}",
            current.surname, current.email
        ),
        EditOutcome::Gone => println!("{client}: the user no longer exists"),
    }
}
