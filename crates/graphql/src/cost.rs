//! The cost of a request, computed from its parsed document before
//! async-graphql validates or runs it, in time linear in the document:
//! every fragment is measured once (memoized), never expanded.
//!
//! The model (the same formula as the fields' `complexity`, so async-graphql's
//! own complexity check agrees with it):
//! - a field costs 1 plus what it selects;
//! - a list field of at most `limit` rows costs `1 + limit × (1 + what each
//!   row selects)`; `limit` is the argument's value (literal, variable,
//!   the variable's default or the field's default). A list field without
//!   `limit` counts the length of its list argument (`usersByIds(ids:)`),
//!   else [`MAX_LIMIT`] rows;
//! - a mutation field costs [`WRITE_COST`] more.
//!
//! So the cost bounds the values (objects, list items, scalars) a response
//! can hold, and the rows its statements can read.

mod written;

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, OperationDefinition, OperationType, Selection,
    SelectionSet, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::query::MAX_LIMIT;
use crate::refusal::{Reason, Refusal};
use written::check_written;

/// What one write (a mutation field) costs on top of its field: a statement
/// and a commit, weighed like reading a thousand values.
pub const WRITE_COST: u64 = 1_000;

/// What a connection's `totalCount` costs: a `COUNT(*)` over every row of
/// the list, weighed like a write.
pub(crate) const COUNT_COST: u64 = WRITE_COST;

/// The cost of a list field of at most `rows` rows, each selecting `child`.
pub(crate) fn list_cost(rows: u64, child: u64) -> u64 {
    rows.saturating_mul(child.saturating_add(1))
        .saturating_add(1)
}

/// The cost of a mutation field selecting `child`.
pub(crate) fn write_cost(child: u64) -> u64 {
    WRITE_COST.saturating_add(1).saturating_add(child)
}

/// The caps a document is checked against (see [`crate::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// The highest cost.
    pub cost: u64,
    /// The deepest field nesting.
    pub depth: usize,
    /// The deepest field nesting of an introspection-only document.
    pub introspection_depth: usize,
    /// The deepest nesting of selection sets and fragment spreads.
    pub recursion: usize,
    /// The most fragment definitions.
    pub fragments: usize,
    /// The most fragment spreads, as written.
    pub spreads: usize,
    /// The most field selections, fragments expanded (counted, not expanded).
    pub selections: u64,
    /// The most input values (arguments, list items, object fields,
    /// variable definitions), as written.
    pub input_values: usize,
}

/// What [`CostModel::analyze`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Analysis {
    /// The cost of all operations of the document together.
    pub cost: u64,
    /// The deepest field nesting (`__typename` not counted, as in
    /// async-graphql).
    pub depth: usize,
    /// Field selections with fragments expanded, over all operations.
    pub selections: u64,
}

/// How many rows a list field (or a connection) can return.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rows {
    /// Its `limit` argument, with this default.
    Limit(Option<i64>),
    /// A connection field (an object with a `first` argument): its
    /// `first`, with this default; its page's lists count once.
    First(Option<i64>),
    /// A list of a connection's page (`edges`, `nodes`): bounded, and
    /// already counted, by the connection's `first`; it costs what it
    /// selects, no more.
    PerPage,
    /// The length of this list argument.
    ListArgument(Name),
    /// Nothing bounds it but [`MAX_LIMIT`].
    Unbounded,
}

/// One field of an object type, as the cost model needs it.
#[derive(Debug, Clone)]
struct FieldShape {
    /// The named type it returns (inside any list).
    ty: Name,
    /// `Some` for a list field or a connection.
    rows: Option<Rows>,
    /// A connection's `totalCount`: it counts every row of its list.
    counts: bool,
}

/// The schema's object types and their fields, read from its SDL.
#[derive(Debug, Default)]
pub(crate) struct CostModel {
    objects: HashMap<Name, HashMap<Name, FieldShape>>,
    query: Option<Name>,
    mutation: Option<Name>,
}

impl CostModel {
    /// The model of the schema whose SDL is `sdl`.
    pub(crate) fn from_sdl(sdl: &str) -> Result<Self, async_graphql::parser::Error> {
        let document: ServiceDocument = async_graphql::parser::parse_schema(sdl)?;
        let mut model = CostModel::default();
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    model.query = schema.node.query.map(|n| n.node);
                    model.mutation = schema.node.mutation.map(|n| n.node);
                }
                TypeSystemDefinition::Type(ty) => {
                    let TypeKind::Object(object) = ty.node.kind else {
                        continue;
                    };
                    let page = object.fields.iter().any(|f| f.node.name.node == "pageInfo");
                    let fields = object
                        .fields
                        .into_iter()
                        .map(|field| {
                            let field = field.node;
                            let shape = FieldShape {
                                ty: named(&field.ty.node).clone(),
                                rows: rows_of(&field, page),
                                counts: page && field.name.node == "totalCount",
                            };
                            (field.name.node, shape)
                        })
                        .collect();
                    model.objects.insert(ty.node.name.node, fields);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        if model.query.is_none() && model.objects.contains_key("Query") {
            model.query = Some(Name::new("Query"));
        }
        if model.mutation.is_none() && model.objects.contains_key("Mutation") {
            model.mutation = Some(Name::new("Mutation"));
        }
        Ok(model)
    }

    /// The list fields no argument bounds (`type.field`); the schema has
    /// none (a unit test says so).
    #[cfg(test)]
    pub(crate) fn unbounded_lists(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .objects
            .iter()
            .flat_map(|(ty, fields)| {
                fields
                    .iter()
                    .filter(|(_, f)| f.rows == Some(Rows::Unbounded))
                    .map(move |(name, _)| format!("{ty}.{name}"))
            })
            .collect();
        found.sort();
        found
    }

    /// Whether the model knows the root query type's fields.
    pub(crate) fn is_empty(&self) -> bool {
        self.query
            .as_ref()
            .is_none_or(|q| !self.objects.contains_key(q))
    }

    /// Measures `document` with `variables` and checks it against `caps`;
    /// a document over a cap is refused with the cap's reason. Work and
    /// stack are bounded whatever the document: the caps on fragments,
    /// spreads and input values are checked on the document as written,
    /// then each operation is measured with each fragment measured once,
    /// stopping at the first cap passed.
    pub(crate) fn analyze(
        &self,
        document: &ExecutableDocument,
        variables: &Variables,
        caps: &Caps,
    ) -> Result<Analysis, Refusal> {
        check_written(document, caps)?;
        let total = self.measure(document, variables, caps)?;
        let introspection_only = document
            .operations
            .iter()
            .all(|(_, op)| introspection_only(&op.node.selection_set.node));
        let depth_cap = if introspection_only {
            caps.introspection_depth
        } else {
            caps.depth
        };
        if total.depth > depth_cap {
            return Err(Refusal::new(
                Reason::Depth,
                format!(
                    "the query is nested {} levels deep; at most {depth_cap} are allowed",
                    total.depth
                ),
            ));
        }
        if total.cost > caps.cost {
            return Err(Refusal::new(
                Reason::Cost,
                format!(
                    "the query may cost up to {} (each list counts its `limit` times what \
                     it selects); at most {} is allowed: ask for fewer rows with `limit`",
                    total.cost, caps.cost
                ),
            ));
        }
        Ok(total)
    }

    /// Measures every operation of `document`, adding up their costs and
    /// selections; refused as soon as the selections pass their cap.
    fn measure(
        &self,
        document: &ExecutableDocument,
        variables: &Variables,
        caps: &Caps,
    ) -> Result<Analysis, Refusal> {
        let mut total = Analysis::default();
        for (_, operation) in document.operations.iter() {
            let root = match operation.node.ty {
                OperationType::Query => self.query.as_ref(),
                OperationType::Mutation => self.mutation.as_ref(),
                OperationType::Subscription => None,
            };
            let mut walk = Walk {
                model: self,
                document,
                variables,
                operation: &operation.node,
                caps,
                memo: HashMap::new(),
            };
            let measure = walk.selection_set(
                root,
                &operation.node.selection_set.node,
                operation.node.ty == OperationType::Mutation,
                0,
            )?;
            total.cost = total.cost.saturating_add(measure.cost);
            total.depth = total.depth.max(measure.depth);
            total.selections = total.selections.saturating_add(measure.selections);
            if total.selections > caps.selections {
                return Err(Refusal::new(
                    Reason::Fragments,
                    format!(
                        "the document selects more than {} fields once its fragments are expanded",
                        caps.selections
                    ),
                ));
            }
        }
        Ok(total)
    }
}

/// How many rows `field` of an object type can return (`page`: the type is
/// a connection, with `pageInfo`), or `None` for a single value.
fn rows_of(field: &async_graphql::parser::types::FieldDefinition, page: bool) -> Option<Rows> {
    let argument = |name: &str| field.arguments.iter().find(|a| a.node.name.node == name);
    let default = |arg: &async_graphql::Positioned<
        async_graphql::parser::types::InputValueDefinition,
    >| { arg.node.default_value.as_ref().and_then(|v| int(&v.node)) };
    if !is_list(&field.ty.node) {
        return argument("first").map(|first| Rows::First(default(first)));
    }
    let list_arg = field.arguments.iter().find(|a| is_list(&a.node.ty.node));
    Some(match (argument("limit"), list_arg) {
        (Some(limit), _) => Rows::Limit(default(limit)),
        (None, Some(arg)) => Rows::ListArgument(arg.node.name.node.clone()),
        (None, None) if page => Rows::PerPage,
        (None, None) => Rows::Unbounded,
    })
}

/// Whether a type is a list (possibly non-null).
fn is_list(ty: &Type) -> bool {
    matches!(ty.base, BaseType::List(_))
}

/// The named type inside any lists.
fn named(ty: &Type) -> &Name {
    match &ty.base {
        BaseType::Named(name) => name,
        BaseType::List(inner) => named(inner),
    }
}

/// An integer constant, if `value` is one that fits.
fn int(value: &ConstValue) -> Option<i64> {
    match value {
        ConstValue::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Whether a selection set holds only introspection fields.
fn introspection_only(set: &SelectionSet) -> bool {
    set.items.iter().all(|item| match &item.node {
        Selection::Field(field) => field.node.name.node.starts_with("__"),
        Selection::FragmentSpread(_) | Selection::InlineFragment(_) => false,
    })
}

/// A selection set's measure.
#[derive(Debug, Clone, Copy, Default)]
struct Measure {
    cost: u64,
    depth: usize,
    selections: u64,
}

impl Measure {
    fn add(&mut self, other: Measure) {
        self.cost = self.cost.saturating_add(other.cost);
        self.depth = self.depth.max(other.depth);
        self.selections = self.selections.saturating_add(other.selections);
    }
}

/// A fragment's state while one operation is measured.
#[derive(Debug, Clone, Copy)]
enum Memo {
    /// Being measured: seeing it again is a cycle.
    InProgress,
    Done(Measure),
}

/// Measures one operation.
struct Walk<'a> {
    model: &'a CostModel,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    operation: &'a OperationDefinition,
    caps: &'a Caps,
    /// Per operation: a variable's default may differ between operations.
    memo: HashMap<&'a str, Memo>,
}

impl<'a> Walk<'a> {
    /// Measures `set` on type `ty` (`None`: a type the model does not know,
    /// e.g. introspection), `nesting` selection sets and spreads deep.
    fn selection_set(
        &mut self,
        ty: Option<&'a Name>,
        set: &'a SelectionSet,
        writes: bool,
        nesting: usize,
    ) -> Result<Measure, Refusal> {
        if nesting > self.caps.recursion {
            return Err(Refusal::new(
                Reason::Depth,
                format!(
                    "selections and fragments are nested more than {} levels deep",
                    self.caps.recursion
                ),
            ));
        }
        let mut measure = Measure::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    measure.add(self.field(ty, &field.node, writes, nesting)?);
                }
                Selection::InlineFragment(inline) => {
                    let on = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| &c.node.on.node)
                        .or(ty);
                    let inner = self.selection_set(
                        on,
                        &inline.node.selection_set.node,
                        writes,
                        nesting + 1,
                    )?;
                    measure.add(inner);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    measure.add(self.fragment(name, writes, nesting + 1)?);
                }
            }
            if measure.selections > self.caps.selections {
                return Err(Refusal::new(
                    Reason::Fragments,
                    format!(
                        "the document selects more than {} fields once its fragments are expanded",
                        self.caps.selections
                    ),
                ));
            }
        }
        Ok(measure)
    }

    fn fragment(
        &mut self,
        name: &'a str,
        writes: bool,
        nesting: usize,
    ) -> Result<Measure, Refusal> {
        match self.memo.get(name) {
            Some(Memo::Done(measure)) => return Ok(*measure),
            Some(Memo::InProgress) => {
                return Err(Refusal::new(
                    Reason::Fragments,
                    format!("fragment {name} spreads itself"),
                ));
            }
            None => {}
        }
        // An unknown fragment: validation reports it.
        let Some((key, fragment)) = self.document.fragments.get_key_value(name) else {
            return Ok(Measure::default());
        };
        self.memo.insert(key.as_str(), Memo::InProgress);
        let on = Some(&fragment.node.type_condition.node.on.node);
        let measure = self.selection_set(on, &fragment.node.selection_set.node, writes, nesting)?;
        self.memo.insert(key.as_str(), Memo::Done(measure));
        Ok(measure)
    }

    fn field(
        &mut self,
        parent: Option<&'a Name>,
        field: &'a Field,
        writes: bool,
        nesting: usize,
    ) -> Result<Measure, Refusal> {
        let shape = parent
            .and_then(|ty| self.model.objects.get(ty))
            .and_then(|fields| fields.get(&field.name.node));
        let children = if field.selection_set.node.items.is_empty() {
            Measure::default()
        } else {
            // Nested fields are reads, even under a mutation.
            self.selection_set(
                shape.map(|s| &s.ty),
                &field.selection_set.node,
                false,
                nesting + 1,
            )?
        };
        let cost = match shape.and_then(|s| s.rows.as_ref()) {
            // A page's `edges`/`nodes`: the connection already counted each
            // of its rows (`first` times what the page selects, plus one),
            // so the list adds nothing of its own, and a connection costs
            // what the list field of the same rows does.
            Some(Rows::PerPage) => children.cost,
            Some(rows) => list_cost(self.rows(field, rows), children.cost),
            None => children.cost.saturating_add(1),
        };
        let cost = if shape.is_some_and(|s| s.counts) {
            cost.saturating_add(COUNT_COST)
        } else {
            cost
        };
        let cost = if writes {
            write_cost(children.cost).max(cost)
        } else {
            cost
        };
        let counted = field.name.node != "__typename";
        Ok(Measure {
            cost,
            depth: children.depth + usize::from(counted),
            selections: children.selections.saturating_add(1),
        })
    }

    /// The most rows `field` can return: its `limit` or `first` (or list
    /// argument's length; 1 for a connection page's lists), clamped to 1..=[`MAX_LIMIT`] (a limit out of range is
    /// refused when the field runs; a value that is not a number fails
    /// validation).
    fn rows(&self, field: &Field, rows: &Rows) -> u64 {
        let max = u64::try_from(MAX_LIMIT).unwrap_or(1);
        let argument = |name: &str| {
            field
                .arguments
                .iter()
                .find(|(n, _)| n.node == name)
                .map(|(_, v)| &v.node)
        };
        let count = match rows {
            Rows::Limit(default) => match argument("limit") {
                Some(value) => self.resolve(value, int),
                None => *default,
            }
            .map(|n| u64::try_from(n.max(1)).unwrap_or(1)),
            // A connection that also takes `last` (a service's, paging
            // backwards) counts the larger of the two.
            Rows::First(default) => {
                let first = match argument("first") {
                    Some(value) => self.resolve(value, int),
                    None => *default,
                };
                let last = argument("last").map(|value| self.resolve(value, int));
                match last {
                    None => first,
                    // A `last` whose value is unknown counts the most.
                    Some(None) => None,
                    Some(Some(last)) => Some(first.map_or(last, |first| first.max(last))),
                }
                .map(|n| u64::try_from(n.max(1)).unwrap_or(1))
            }
            Rows::PerPage => Some(1),
            Rows::ListArgument(name) => argument(name).and_then(|value| {
                self.resolve(value, |v| match v {
                    ConstValue::List(items) => u64::try_from(items.len()).ok(),
                    _ => None,
                })
                .or(match value {
                    Value::List(items) => u64::try_from(items.len()).ok(),
                    _ => None,
                })
            }),
            Rows::Unbounded => None,
        };
        count.unwrap_or(max).clamp(1, max)
    }

    /// `read` applied to the constant `value` stands for: itself, or the
    /// variable's value, or the variable's default.
    fn resolve<T>(&self, value: &Value, read: impl Fn(&ConstValue) -> Option<T>) -> Option<T> {
        match value {
            Value::Variable(name) => match self.variables.get(name) {
                Some(given) => read(given),
                None => self
                    .operation
                    .variable_definitions
                    .iter()
                    .find(|d| d.node.name.node == *name)
                    .and_then(|d| d.node.default_value.as_ref())
                    .and_then(|d| read(&d.node)),
            },
            Value::Number(n) => read(&ConstValue::Number(n.clone())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
