//! The caps that hold for a document as written, checked before anything
//! is measured: fragment definitions, spreads, input values and fields,
//! counted without expanding a fragment.

use async_graphql::Positioned;
use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql_value::{ConstValue, Value};

use super::Caps;
use crate::refusal::{Reason, Refusal};

/// Checks the caps that hold for `document` as written, before anything
/// is measured: fragment definitions, spreads, input values and fields.
pub(super) fn check_written(document: &ExecutableDocument, caps: &Caps) -> Result<(), Refusal> {
    if document.fragments.len() > caps.fragments {
        return Err(Refusal::new(
            Reason::Fragments,
            format!(
                "the document defines {} fragments; at most {} are allowed",
                document.fragments.len(),
                caps.fragments
            ),
        ));
    }
    let written = Written::count(document);
    if written.spreads > caps.spreads {
        return Err(Refusal::new(
            Reason::Fragments,
            format!(
                "the document has {} fragment spreads; at most {} are allowed",
                written.spreads, caps.spreads
            ),
        ));
    }
    if written.input_values > caps.input_values {
        return Err(Refusal::new(
            Reason::Cost,
            format!(
                "the document has {} arguments and input values; at most {} are allowed",
                written.input_values, caps.input_values
            ),
        ));
    }
    if written.fields as u64 > caps.selections {
        return Err(Refusal::new(
            Reason::Cost,
            format!(
                "the document selects {} fields; at most {} are allowed",
                written.fields, caps.selections
            ),
        ));
    }
    Ok(())
}

/// Counts of the document as written (no fragment expanded).
#[derive(Debug, Default)]
struct Written {
    fields: usize,
    spreads: usize,
    input_values: usize,
}

impl Written {
    fn count(document: &ExecutableDocument) -> Self {
        let mut written = Written::default();
        // An explicit stack: the parser bounds selection nesting (64), not
        // value nesting.
        let mut sets: Vec<&SelectionSet> = Vec::new();
        for (_, operation) in document.operations.iter() {
            for variable in &operation.node.variable_definitions {
                written.input_values += 1;
                if let Some(default) = &variable.node.default_value {
                    written.const_value(&default.node);
                }
            }
            written.directives(&operation.node.directives);
            sets.push(&operation.node.selection_set.node);
        }
        for fragment in document.fragments.values() {
            written.directives(&fragment.node.directives);
            sets.push(&fragment.node.selection_set.node);
        }
        while let Some(set) = sets.pop() {
            for item in &set.items {
                match &item.node {
                    Selection::Field(field) => {
                        written.fields += 1;
                        for (_, value) in &field.node.arguments {
                            written.value(&value.node);
                        }
                        written.directives(&field.node.directives);
                        sets.push(&field.node.selection_set.node);
                    }
                    Selection::FragmentSpread(spread) => {
                        written.spreads += 1;
                        written.directives(&spread.node.directives);
                    }
                    Selection::InlineFragment(inline) => {
                        written.directives(&inline.node.directives);
                        sets.push(&inline.node.selection_set.node);
                    }
                }
            }
        }
        written
    }

    fn directives(&mut self, directives: &[Positioned<Directive>]) {
        for directive in directives {
            self.input_values += 1;
            for (_, value) in &directive.node.arguments {
                self.value(&value.node);
            }
        }
    }

    fn value(&mut self, value: &Value) {
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            self.input_values += 1;
            match value {
                Value::List(items) => stack.extend(items),
                Value::Object(fields) => stack.extend(fields.values()),
                _ => {}
            }
        }
    }

    fn const_value(&mut self, value: &ConstValue) {
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            self.input_values += 1;
            match value {
                ConstValue::List(items) => stack.extend(items),
                ConstValue::Object(fields) => stack.extend(fields.values()),
                _ => {}
            }
        }
    }
}
