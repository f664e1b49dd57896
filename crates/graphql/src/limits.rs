//! The bounds on one request, checked before async-graphql validates or
//! runs it, and the schema extensions that apply them.
//!
//! - `RequestLimits` (a schema extension): parses the request itself
//!   (async-graphql reuses the parsed document) and measures it with the
//!   cost model (see [`MAX_COMPLEXITY`]) before anything else looks at it: fragments,
//!   spreads, fields (fragments counted, not expanded), input values,
//!   nesting and cost. async-graphql's own checks (recursion depth,
//!   validation, complexity) expand fragments, so they must only ever see a
//!   document already known to be small.
//! - [`admit`]: the same for a batch (a JSON array of operations), as a
//!   whole, before any of its operations runs.
//! - [`encode`]: the answer as JSON, refused if it is larger than
//!   [`MAX_RESPONSE_BYTES`].
//! - `ErrorCodes` (a schema extension): `extensions.code` on the errors
//!   async-graphql raises itself.
//!
//! Every refusal is `BAD_USER_INPUT` with `extensions.reason` (see
//! [`Reason`]) and is logged once at `warn`.

use std::any::TypeId;
use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest,
};
use async_graphql::{BatchRequest, BatchResponse, Request, Response, ServerResult};

use crate::RosterSchema;
use crate::cost::{Caps, CostModel};
use crate::refusal::{Reason, Refusal};

/// The highest cost a request may have, all its operations together (a
/// batch too): at most this many values in its answer and rows read.
///
/// The cost model: a field costs 1 plus what it selects; a list field of
/// at most `limit` rows costs `1 + limit × (1 + what each row selects)`
/// (its `limit` argument, literal or variable, or its default; without one,
/// the length of its list argument, e.g. `usersByIds(ids:)`); a mutation
/// field costs [`WRITE_COST`](crate::WRITE_COST) more. A page of 1,000
/// users with six fields costs 7,001; `groups(limit: 50) { users(limit: 20)
/// { groups(limit: 5) { name } } }` costs 21,051.
pub const MAX_COMPLEXITY: usize = 100_000;
/// The deepest fields may nest.
pub const MAX_DEPTH: usize = 12;
/// The deepest an introspection-only query may nest: the introspection
/// query GraphiQL sends is 13 levels deep (`__schema types fields args type`
/// and seven `ofType`).
pub const MAX_INTROSPECTION_DEPTH: usize = 16;
/// The deepest selection sets and fragment spreads may nest (also the
/// parser's recursion limit).
pub const MAX_RECURSIVE_DEPTH: usize = 32;
/// The most fragment definitions in one document.
pub const MAX_FRAGMENTS: usize = 100;
/// The most fragment spreads in one document, as written.
pub const MAX_SPREADS: usize = 1_000;
/// The most field selections in one document with its fragments expanded
/// (counted without expanding them), all operations together.
pub const MAX_SELECTIONS: usize = 5_000;
/// The most input values in one document as written: arguments, their list
/// items and object fields, directives, variable definitions.
pub const MAX_INPUT_VALUES: usize = 10_000;
/// The most directives on one field, fragment or operation.
pub const MAX_DIRECTIVES: usize = 4;
/// The most operations in one batch.
pub const MAX_BATCH_OPERATIONS: usize = 16;
/// The largest answer, as JSON (8 MiB); a larger one is replaced by a
/// `response_size` refusal.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// The caps as the cost model takes them.
const CAPS: Caps = Caps {
    cost: MAX_COMPLEXITY as u64,
    depth: MAX_DEPTH,
    introspection_depth: MAX_INTROSPECTION_DEPTH,
    recursion: MAX_RECURSIVE_DEPTH,
    fragments: MAX_FRAGMENTS,
    spreads: MAX_SPREADS,
    selections: MAX_SELECTIONS as u64,
    input_values: MAX_INPUT_VALUES,
};

/// The cost model of the schema type `T`, read once from its SDL (`sdl`
/// is asked for only the first time): one model per schema type of the
/// program, so the map stays as small as the program.
fn model_of<T: 'static>(sdl: impl FnOnce() -> String) -> Arc<CostModel> {
    static MODELS: LazyLock<RwLock<HashMap<TypeId, Arc<CostModel>>>> =
        LazyLock::new(RwLock::default);
    let key = TypeId::of::<T>();
    if let Some(model) = MODELS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return model.clone();
    }
    let model = Arc::new(read_model(&sdl()));
    MODELS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_insert(model)
        .clone()
}

/// The cost model of a schema's SDL.
fn read_model(sdl: &str) -> CostModel {
    // Not reachable with the SDL async-graphql writes (a unit test reads
    // it); without a model every field would count 1.
    let model = CostModel::from_sdl(sdl).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the schema's SDL does not parse");
        CostModel::default()
    });
    if model.is_empty() {
        tracing::error!("the cost model does not know the query type: list fields count 1 row");
    }
    model
}

/// Measures `request` (parsing it, and keeping the parsed document in it
/// for async-graphql): its cost, or why it is refused. A request that does
/// not parse costs 0 here; async-graphql reports its syntax error.
fn measure(model: &CostModel, request: &mut Request) -> Result<u64, Refusal> {
    let variables = std::mem::take(&mut request.variables);
    let cost = match request.parsed_query() {
        Ok(document) => model.analyze(document, &variables, &CAPS).map(|a| a.cost),
        Err(_) => Ok(0),
    };
    request.variables = variables;
    cost
}

/// The extension that checks each request to the schema type `T` against
/// the bounds above before async-graphql parses (again), checks or runs it.
pub(crate) struct RequestLimits<T>(PhantomData<fn() -> T>);

impl<T> RequestLimits<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: 'static> ExtensionFactory for RequestLimits<T> {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestLimits::<T>::new())
    }
}

#[async_graphql::async_trait::async_trait]
impl<T: 'static> Extension for RequestLimits<T> {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let model = model_of::<T>(|| ctx.sdl());
        if let Err(refusal) = measure(&model, &mut request) {
            return Err(refusal.logged().to_server_error());
        }
        next.run(ctx, request).await
    }
}

/// Checks a whole batch for Roster's own schema before any of it runs; see
/// [`Served::admit`](crate::Served::admit), which does the same for any
/// schema built with [`build_schema`](crate::build_schema).
pub fn admit(batch: &mut BatchRequest) -> Result<(), Refusal> {
    crate::Served::admit(roster_schema(), batch)
}

/// Roster's own schema, built once for [`admit`].
fn roster_schema() -> &'static RosterSchema {
    static SCHEMA: LazyLock<RosterSchema> = LazyLock::new(crate::schema);
    &SCHEMA
}

/// Checks a whole batch against `T`'s cost model (`sdl` is its schema's
/// SDL, asked for once): at most [`MAX_BATCH_OPERATIONS`] operations, each
/// within the bounds of a single request, and all together within
/// [`MAX_COMPLEXITY`]. A single request passes unchecked here (the schema
/// checks it when it runs). The refusal is logged; answer it with
/// [`Refusal::to_response`].
pub(crate) fn admit_to<T: 'static>(
    sdl: impl FnOnce() -> String,
    batch: &mut BatchRequest,
) -> Result<(), Refusal> {
    let BatchRequest::Batch(requests) = batch else {
        return Ok(());
    };
    if requests.len() > MAX_BATCH_OPERATIONS {
        return Err(Refusal::new(
            Reason::Batch,
            format!(
                "the batch has {} operations; at most {MAX_BATCH_OPERATIONS} are allowed",
                requests.len()
            ),
        )
        .logged());
    }
    let model = model_of::<T>(sdl);
    let mut total: u64 = 0;
    for (index, request) in requests.iter_mut().enumerate() {
        let cost = measure(&model, request).map_err(|r| {
            r.context(&format!("operation {} of the batch", index + 1))
                .logged()
        })?;
        total = total.saturating_add(cost);
    }
    if total > CAPS.cost {
        return Err(Refusal::new(
            Reason::Batch,
            format!(
                "the batch may cost up to {total} in all; at most {MAX_COMPLEXITY} is allowed \
                 for one request"
            ),
        )
        .logged());
    }
    Ok(())
}

/// `response` as JSON, if it fits in `max_bytes`; otherwise a
/// `response_size` refusal in its place (logged), written without ever
/// holding more than `max_bytes` of the refused answer. Returns the answer
/// actually sent (to count its errors) and its bytes.
pub fn encode(response: BatchResponse, max_bytes: usize) -> (BatchResponse, Vec<u8>) {
    let mut out = Capped {
        bytes: Vec::new(),
        max: max_bytes,
    };
    if serde_json::to_writer(&mut out, &response).is_ok() {
        return (response, out.bytes);
    }
    drop(out);
    drop(response);
    let refusal = Refusal::new(
        Reason::ResponseSize,
        format!("the answer is larger than {max_bytes} bytes; ask for fewer rows or fields"),
    )
    .logged();
    let answer = BatchResponse::Single(refusal.to_response());
    let bytes = serde_json::to_vec(&answer).unwrap_or_else(|_| {
        br#"{"errors":[{"message":"the answer is too large","extensions":{"code":"BAD_USER_INPUT","reason":"response_size"}}]}"#.to_vec()
    });
    (answer, bytes)
}

/// A buffer that refuses to grow past `max`.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(data.len()) > self.max {
            return Err(io::Error::other("the answer is over the size limit"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Gives every error without `extensions.code` the code `BAD_USER_INPUT`:
/// those are async-graphql's own (syntax, validation, limits, a variable or
/// literal that does not parse as its type, e.g. a bad `DateTime`). Every
/// error a resolver returns already carries its code (see
/// [`ApiError`](crate::ApiError)).
pub(crate) struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", "BAD_USER_INPUT");
            }
        }
        response
    }
}

#[cfg(test)]
pub(crate) fn model() -> Arc<CostModel> {
    model_of::<RosterSchema>(|| roster_schema().sdl())
}

#[cfg(test)]
pub(crate) const fn caps() -> Caps {
    CAPS
}
