//! The GraphQL load driver: `clients` concurrent HTTP clients against a
//! running server for a fixed time, mixing nested reads, updates with a
//! fresh or a stale `lastchange`, inserts and memberships; then a check of
//! the database against everything the server said it did. The clients
//! may spread over several servers on one database.
//!
//! Shared (by `#[path]`) by `cargo bench --bench load` (the 60 s run and
//! its report) and the short run in `tests/it/graphql/load.rs`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

/// How hard and how long to drive the server.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent clients, each sending one request at a time.
    pub clients: usize,
    /// How long the clients keep sending.
    pub duration: Duration,
    /// Seeds every client's choices, so a run is repeatable.
    pub seed: u64,
    /// Only nested reads (the data does not change), e.g. to tell a leak
    /// from a growing working set.
    pub reads_only: bool,
    /// A bearer token every request carries (a server with
    /// `ROSTER_AUTH=jwt`), or none.
    pub token: Option<String>,
}

/// Updates go to this many users, so that concurrent clients collide and
/// some fresh updates end in `CONFLICT`.
const HOT_USERS: usize = 20;

/// A `lastchange` older than any row: an update with it must be a conflict.
const STALE: &str = "2000-01-01T00:00:00Z";

/// What the clients did and what the server answered.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency in microseconds per operation kind.
    pub latency: BTreeMap<&'static str, Histogram<u64>>,
    /// Error answers by `extensions.code` (or `HTTP_<status>`, `TRANSPORT`).
    pub errors: BTreeMap<String, u64>,
    /// Stale updates the server accepted (must stay 0).
    pub stale_accepted: u64,
    /// Successful updates: user id, surname written, `lastchange` returned.
    pub updates: Vec<(i64, String, DateTime<Utc>)>,
    /// Inserted users: id and name.
    pub inserts: Vec<(i64, String)>,
    /// `membershipAdd` answers: the pair and whether it was new.
    pub memberships: Vec<(i64, i64, bool)>,
}

impl LoadReport {
    /// Requests answered, all kinds together.
    pub fn requests(&self) -> u64 {
        self.latency.values().map(Histogram::len).sum()
    }

    /// Requests per second over the run.
    pub fn throughput(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency over every request, microseconds.
    pub fn overall(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in self.latency.values() {
            all.add(h).expect("same bounds");
        }
        all
    }

    /// Error answers other than `CONFLICT`.
    pub fn unexpected_errors(&self) -> u64 {
        self.errors
            .iter()
            .filter(|(code, _)| code.as_str() != "CONFLICT")
            .map(|(_, n)| n)
            .sum()
    }

    fn merge(&mut self, other: LoadReport) {
        for (kind, h) in other.latency {
            self.latency
                .entry(kind)
                .or_insert_with(histogram)
                .add(&h)
                .expect("same bounds");
        }
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.stale_accepted += other.stale_accepted;
        self.updates.extend(other.updates);
        self.inserts.extend(other.inserts);
        self.memberships.extend(other.memberships);
    }

    fn record(&mut self, kind: &'static str, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency
            .entry(kind)
            .or_insert_with(histogram)
            .saturating_record(micros.max(1));
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds")
}

/// What the database holds after a run, checked against the report.
#[derive(Debug)]
pub struct DataCheck {
    /// Users whose last successful update was checked.
    pub updated_users: usize,
    /// Inserted users found with their names.
    pub inserted_users: usize,
    /// Memberships before and after the run.
    pub memberships_before: u64,
    /// After the run: `before` + the number of `membershipAdd` answered `true`.
    pub memberships_after: u64,
}

/// One GraphQL answer: `Ok(data)` or `Err(code)`.
type Answer = Result<Value, String>;

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn call(&self, query: &str, variables: Value) -> Answer {
        let response = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|_| "TRANSPORT".to_owned())?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|_| "TRANSPORT".to_owned())?;
        if let Some(error) = body["errors"].as_array().and_then(|e| e.first()) {
            return Err(error["extensions"]["code"]
                .as_str()
                .unwrap_or("NO_CODE")
                .to_owned());
        }
        if status != 200 {
            return Err(format!("HTTP_{status}"));
        }
        Ok(body["data"].clone())
    }
}

fn id(value: &Value) -> anyhow::Result<i64> {
    value
        .as_str()
        .context("an ID")?
        .parse()
        .context("a numeric ID")
}

/// The ids the clients pick from: the server's users and groups.
async fn directory(client: &Client) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
    let data = client
        .call(
            "{ users(limit: 1000) { id } groups(limit: 1000) { id } }",
            json!({}),
        )
        .await
        .map_err(|code| anyhow::anyhow!("listing the directory failed: {code}"))?;
    let ids = |list: &Value| -> anyhow::Result<Vec<i64>> {
        list.as_array()
            .context("a list")?
            .iter()
            .map(|row| id(&row["id"]))
            .collect()
    };
    let (users, groups) = (ids(&data["users"])?, ids(&data["groups"])?);
    ensure!(
        users.len() >= HOT_USERS && !groups.is_empty(),
        "the server has {} users and {} groups; seed it first",
        users.len(),
        groups.len()
    );
    Ok((users, groups))
}

/// Drives the servers at `base_urls` (e.g. `http://127.0.0.1:8000`), all
/// on one database: client `k` talks to server `k % base_urls.len()`.
pub async fn run(base_urls: &[String], options: &LoadOptions) -> anyhow::Result<LoadReport> {
    ensure!(!base_urls.is_empty(), "no server to drive");
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &options.token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(options.clients)
        .timeout(Duration::from_secs(60))
        .build()?;
    let urls: Vec<String> = base_urls
        .iter()
        .map(|base| format!("{base}/graphql"))
        .collect();
    let client = Client {
        http,
        url: urls[0].clone(),
    };
    let (users, groups) = directory(&client).await?;
    let started = Instant::now();
    let deadline = started + options.duration;
    let tasks: Vec<_> = (0..options.clients)
        .map(|n| {
            let client = Client {
                http: client.http.clone(),
                url: urls[n % urls.len()].clone(),
            };
            let (users, groups) = (users.clone(), groups.clone());
            let seed = options.seed.wrapping_add(n as u64);
            let reads_only = options.reads_only;
            tokio::spawn(async move {
                drive(n, client, users, groups, seed, deadline, reads_only).await
            })
        })
        .collect();
    let mut report = LoadReport::default();
    for task in tasks {
        report.merge(task.await.context("a client task panicked")??);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

const NESTED: &str = "query($skip: Int!) { groups(skip: $skip, limit: 10) { name \
     groupType { name } users(limit: 100) { name groups(limit: 20) { name } } } }";
const LASTCHANGE: &str = "query($id: ID!) { user(id: $id) { lastchange } }";
const UPDATE: &str = "mutation($id: ID!, $at: DateTime!, $surname: String) { \
     userUpdate(user: { id: $id, lastchange: $at, surname: $surname }) { surname lastchange } }";
const INSERT: &str = "mutation($name: String) { userInsert(user: { name: $name }) { id name } }";
const JOIN: &str =
    "mutation($user: ID!, $group: ID!) { membershipAdd(userId: $user, groupId: $group) }";

/// One client's loop until `deadline`.
async fn drive(
    n: usize,
    client: Client,
    users: Vec<i64>,
    groups: Vec<i64>,
    seed: u64,
    deadline: Instant,
    reads_only: bool,
) -> anyhow::Result<LoadReport> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = LoadReport::default();
    let mut i = 0_u64;
    while Instant::now() < deadline {
        i += 1;
        let pick = if reads_only {
            0
        } else {
            rng.random_range(0..100)
        };
        let started = Instant::now();
        let (kind, answer) = match pick {
            0..55 => {
                let skip = rng.random_range(0..groups.len().saturating_sub(10).max(1));
                ("read", client.call(NESTED, json!({ "skip": skip })).await)
            }
            55..75 => {
                let user = users[rng.random_range(0..HOT_USERS)];
                let read = client
                    .call(LASTCHANGE, json!({ "id": user.to_string() }))
                    .await;
                report.record("read one", started.elapsed());
                let Ok(data) = read else {
                    count_error(&mut report, read);
                    continue;
                };
                let at = data["user"]["lastchange"].clone();
                let surname = format!("client {n} update {i}");
                let started = Instant::now();
                let answer = client
                    .call(
                        UPDATE,
                        json!({ "id": user.to_string(), "at": at, "surname": surname }),
                    )
                    .await;
                if let Ok(data) = &answer {
                    let stored = &data["userUpdate"];
                    let at = stored["lastchange"]
                        .as_str()
                        .context("lastchange")?
                        .parse::<DateTime<Utc>>()?;
                    report.updates.push((user, surname, at));
                }
                report.record("update", started.elapsed());
                count_error(&mut report, answer);
                continue;
            }
            75..80 => {
                let user = users[rng.random_range(0..HOT_USERS)];
                let answer = client
                    .call(
                        UPDATE,
                        json!({ "id": user.to_string(), "at": STALE, "surname": "stale" }),
                    )
                    .await;
                if answer.is_ok() {
                    report.stale_accepted += 1;
                }
                ("stale update", answer)
            }
            80..90 => {
                let name = format!("load client {n} insert {i}");
                let answer = client.call(INSERT, json!({ "name": name })).await;
                report.record("insert", started.elapsed());
                let Ok(data) = answer else {
                    count_error(&mut report, answer);
                    continue;
                };
                let user = id(&data["userInsert"]["id"])?;
                report.inserts.push((user, name));
                let group = groups[rng.random_range(0..groups.len())];
                let started = Instant::now();
                let answer = join(&client, &mut report, user, group).await;
                report.record("membership", started.elapsed());
                count_error(&mut report, answer);
                continue;
            }
            _ => {
                let user = users[rng.random_range(0..users.len())];
                let group = groups[rng.random_range(0..groups.len())];
                ("membership", join(&client, &mut report, user, group).await)
            }
        };
        report.record(kind, started.elapsed());
        count_error(&mut report, answer);
    }
    Ok(report)
}

async fn join(client: &Client, report: &mut LoadReport, user: i64, group: i64) -> Answer {
    let answer = client
        .call(
            JOIN,
            json!({ "user": user.to_string(), "group": group.to_string() }),
        )
        .await;
    if let Ok(data) = &answer
        && let Some(new) = data["membershipAdd"].as_bool()
    {
        report.memberships.push((user, group, new));
    }
    answer
}

fn count_error(report: &mut LoadReport, answer: Answer) {
    if let Err(code) = answer {
        *report.errors.entry(code).or_default() += 1;
    }
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("a row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Memberships in the database now.
pub async fn memberships(db: &DatabaseConnection) -> anyhow::Result<u64> {
    Ok(u64::try_from(
        scalar(db, "SELECT COUNT(*) FROM users_groups").await?,
    )?)
}

/// Checks the database against `report`: every user's last successful
/// update is what is stored, every inserted user is there, every membership
/// the server reported is there exactly once, and the count grew by exactly
/// the number of `membershipAdd` calls answered `true`.
pub async fn check(
    db: &DatabaseConnection,
    report: &LoadReport,
    memberships_before: u64,
) -> anyhow::Result<DataCheck> {
    use roster::entity::{user, users_groups};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let mut last: HashMap<i64, (&str, DateTime<Utc>)> = HashMap::new();
    for (id, surname, at) in &report.updates {
        let entry = last.entry(*id).or_insert((surname, *at));
        if *at > entry.1 {
            *entry = (surname, *at);
        }
    }
    for (id, (surname, at)) in &last {
        let row = user::Entity::find_by_id(*id)
            .one(db)
            .await?
            .with_context(|| format!("updated user {id} is gone"))?;
        if row.surname.as_deref() != Some(*surname) || row.lastchange != *at {
            bail!(
                "user {id}: the last successful update wrote {surname:?} at {at}, \
                 the database holds {:?} at {}",
                row.surname,
                row.lastchange
            );
        }
    }
    for (id, name) in &report.inserts {
        let row = user::Entity::find_by_id(*id)
            .one(db)
            .await?
            .with_context(|| format!("inserted user {id} is missing"))?;
        ensure!(
            row.name.as_deref() == Some(name.as_str()),
            "inserted user {id}"
        );
    }
    let duplicates = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT user_id, group_id FROM users_groups \
         GROUP BY user_id, group_id HAVING COUNT(*) > 1) d",
    )
    .await?;
    ensure!(duplicates == 0, "{duplicates} duplicated memberships");
    for (user, group, _) in &report.memberships {
        let found = users_groups::Entity::find()
            .filter(users_groups::Column::UserId.eq(*user))
            .filter(users_groups::Column::GroupId.eq(*group))
            .one(db)
            .await?;
        ensure!(found.is_some(), "membership ({user}, {group}) is missing");
    }
    let added = report.memberships.iter().filter(|(_, _, new)| *new).count() as u64;
    let after = memberships(db).await?;
    ensure!(
        after == memberships_before + added,
        "memberships: {memberships_before} before + {added} added = {} expected, {after} stored",
        memberships_before + added
    );
    ensure!(
        report.stale_accepted == 0,
        "{} stale updates were accepted",
        report.stale_accepted
    );
    Ok(DataCheck {
        updated_users: last.len(),
        inserted_users: report.inserts.len(),
        memberships_before,
        memberships_after: after,
    })
}
