//! `UnsetVariables` (a schema extension): an input-object field whose
//! value is a variable the request does not give (nullable, without a
//! default) is left out, as the GraphQL spec's input coercion says.
//! async-graphql would make it `null` instead, and for an update's nullable
//! field `null` means "set the column to NULL", not "leave it as it is":
//! `userUpdate(user: { id: $id, lastchange: $at, email: $email })` sent
//! without `$email` must not clear the address.
//!
//! The extension rewrites the parsed document before async-graphql
//! validates it: it drops those fields from the executed operation (and,
//! in a document of one operation, from its fragments), then the
//! definitions of variables no longer used (which validation would
//! otherwise refuse as unused). A document that uses no such variable is
//! left untouched (and not copied).

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Request, ServerResult};
use async_graphql_value::Value;

/// The extension; see the module documentation.
pub(crate) struct UnsetVariables;

impl ExtensionFactory for UnsetVariables {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(UnsetVariables)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for UnsetVariables {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        leave_out_unset_variables(&mut request);
        next.run(ctx, request).await
    }
}

/// Rewrites `request`'s parsed document as the module documentation says;
/// a request that does not parse is left to async-graphql to report.
pub(crate) fn leave_out_unset_variables(request: &mut Request) {
    let given: HashSet<Name> = request.variables.keys().cloned().collect();
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return;
    };
    let Some(operation) = executed(document, operation_name.as_deref()) else {
        return;
    };
    let unset: HashSet<Name> = operation
        .node
        .variable_definitions
        .iter()
        .map(|definition| &definition.node)
        .filter(|definition| {
            definition.default_value.is_none()
                && definition.var_type.node.nullable
                && !given.contains(&definition.name.node)
        })
        .map(|definition| definition.name.node.clone())
        .collect();
    if unset.is_empty() {
        return;
    }
    let mut rewritten = document.clone();
    let single = matches!(rewritten.operations, DocumentOperations::Single(_));
    let mut changed = false;
    if single {
        for fragment in rewritten.fragments.values_mut() {
            changed |= strip_set(&mut fragment.node.selection_set.node, &unset);
        }
    }
    let Some(operation) = executed_mut(&mut rewritten, operation_name.as_deref()) else {
        return;
    };
    changed |= strip_set(&mut operation.node.selection_set.node, &unset);
    if !changed {
        return;
    }
    let used = used_variables(&rewritten, operation_name.as_deref());
    if let Some(operation) = executed_mut(&mut rewritten, operation_name.as_deref()) {
        operation.node.variable_definitions.retain(|definition| {
            let name = &definition.node.name.node;
            !unset.contains(name) || used.contains(name)
        });
    }
    request.set_parsed_query(rewritten);
}

/// The operation async-graphql will run: the only one, or the one named.
fn executed<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

fn executed_mut<'a>(
    document: &'a mut ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a mut Positioned<OperationDefinition>> {
    match (&mut document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get_mut(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values_mut().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Drops, from every argument value in `set` (nested sets and inline
/// fragments included), the input-object fields whose value is one of the
/// `unset` variables. Whether anything was dropped.
fn strip_set(set: &mut SelectionSet, unset: &HashSet<Name>) -> bool {
    let mut changed = false;
    let mut sets = vec![set];
    while let Some(set) = sets.pop() {
        for item in &mut set.items {
            match &mut item.node {
                Selection::Field(field) => {
                    for (_, value) in &mut field.node.arguments {
                        changed |= strip_value(&mut value.node, unset);
                    }
                    sets.push(&mut field.node.selection_set.node);
                }
                Selection::InlineFragment(inline) => {
                    sets.push(&mut inline.node.selection_set.node);
                }
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    changed
}

/// Drops the object fields bound to an `unset` variable, at any depth of
/// `value` (a list item bound to one stays: it is null, as the spec says).
fn strip_value(value: &mut Value, unset: &HashSet<Name>) -> bool {
    let mut changed = false;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(fields) => {
                let before = fields.len();
                fields.retain(|_, v| !matches!(v, Value::Variable(name) if unset.contains(name)));
                changed |= fields.len() != before;
                stack.extend(fields.values_mut());
            }
            Value::List(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    changed
}

/// The argument values of `directives`.
fn directive_values(directives: &[Positioned<Directive>]) -> impl Iterator<Item = &Value> {
    directives
        .iter()
        .flat_map(|d| d.node.arguments.iter().map(|(_, v)| &v.node))
}

/// The variables the executed operation still uses: in its directives and
/// in the arguments of every field and directive it reaches, through
/// fragments too.
fn used_variables(document: &ExecutableDocument, name: Option<&str>) -> HashSet<Name> {
    let mut used = HashSet::new();
    let Some(operation) = executed(document, name) else {
        return used;
    };
    let mut values: Vec<&Value> = Vec::new();
    let mut sets: Vec<&SelectionSet> = vec![&operation.node.selection_set.node];
    let mut seen_fragments: HashSet<&Name> = HashSet::new();
    values.extend(directive_values(&operation.node.directives));
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    values.extend(field.node.arguments.iter().map(|(_, v)| &v.node));
                    values.extend(directive_values(&field.node.directives));
                    sets.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(inline) => {
                    values.extend(directive_values(&inline.node.directives));
                    sets.push(&inline.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    values.extend(directive_values(&spread.node.directives));
                    let fragment_name = &spread.node.fragment_name.node;
                    if seen_fragments.insert(fragment_name)
                        && let Some(fragment) = document.fragments.get(fragment_name)
                    {
                        values.extend(directive_values(&fragment.node.directives));
                        sets.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    while let Some(value) = values.pop() {
        match value {
            Value::Variable(name) => {
                used.insert(name.clone());
            }
            Value::List(items) => values.extend(items),
            Value::Object(fields) => values.extend(fields.values()),
            _ => {}
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use async_graphql::Variables;

    use super::*;

    /// The document `query` becomes with `variables`, printed back as the
    /// parts the tests look at: each operation's variable names and
    /// arguments.
    fn rewrite(query: &str, variables: serde_json::Value) -> Request {
        let mut request = Request::new(query).variables(Variables::from_json(variables));
        leave_out_unset_variables(&mut request);
        request
    }

    fn arguments(request: &mut Request) -> String {
        let document = request.parsed_query().expect("parses");
        let operation = executed(document, None).expect("one operation");
        let mut out = Vec::new();
        for definition in &operation.node.variable_definitions {
            out.push(format!("${}", definition.node.name.node));
        }
        let mut sets = vec![&operation.node.selection_set.node];
        sets.extend(
            document
                .fragments
                .values()
                .map(|f| &f.node.selection_set.node),
        );
        while let Some(set) = sets.pop() {
            for item in &set.items {
                if let Selection::Field(field) = &item.node {
                    for (name, value) in &field.node.arguments {
                        out.push(format!("{}: {}", name.node, value.node));
                    }
                    sets.push(&field.node.selection_set.node);
                }
            }
        }
        out.join(" ")
    }

    const UPDATE: &str = "mutation($id: ID!, $at: DateTime!, $name: String, $email: String) { \
        userUpdate(user: { id: $id, lastchange: $at, name: $name, email: $email }) { id } }";

    #[test]
    fn a_field_bound_to_a_variable_not_given_is_left_out() {
        let mut request = rewrite(
            UPDATE,
            serde_json::json!({ "id": "1", "at": "x", "name": "Ada" }),
        );
        assert_eq!(
            arguments(&mut request),
            "$id $at $name user: {id: $id, lastchange: $at, name: $name}"
        );
    }

    #[test]
    fn a_variable_given_as_null_stays() {
        let mut request = rewrite(
            UPDATE,
            serde_json::json!({ "id": "1", "at": "x", "name": null, "email": null }),
        );
        assert_eq!(
            arguments(&mut request),
            "$id $at $name $email user: {id: $id, lastchange: $at, name: $name, email: $email}"
        );
    }

    #[test]
    fn a_default_counts_as_given_and_other_uses_keep_the_definition() {
        let query = "query($n: String = \"x\", $m: String) { a: userByEmail(email: $m) { id } \
                     users(filter: { nameContains: $n, email: $m }) { id } }";
        let mut request = rewrite(query, serde_json::json!({}));
        assert_eq!(
            arguments(&mut request),
            "$n $m email: $m filter: {nameContains: $n}"
        );
    }

    #[test]
    fn fragments_are_rewritten_too() {
        let query = "query($m: String) { ...F } fragment F on Query { users(filter: { email: $m }) { id } }";
        let mut request = rewrite(query, serde_json::json!({}));
        assert_eq!(arguments(&mut request), "filter: {}");
    }
}
