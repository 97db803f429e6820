//! Result sets in the Data API's shape: typed fields, column metadata the way
//! Redshift describes its columns, and paging tokens.
//!
//! Values arrive from PostgreSQL in its text format, which prints timestamps,
//! dates and numerics exactly the way Redshift does ("2024-05-01 10:00:00",
//! fractional seconds only when non-zero, "+00" for `timestamptz` in UTC), so
//! those are passed through; only the types the Data API returns as numbers,
//! booleans or blobs are converted.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use tokio_postgres::types::Type;

/// One value of a record: the Data API's `Field` union.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Null,
    Boolean(bool),
    Long(i64),
    Double(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Field {
    /// Converts a value in PostgreSQL's text format (`None` is SQL NULL).
    pub(crate) fn from_text(ty: &Type, text: Option<&str>) -> Self {
        let Some(text) = text else {
            return Self::Null;
        };
        let converted = match ty.name() {
            "bool" => Some(Self::Boolean(text == "t")),
            "int2" | "int4" | "int8" | "oid" => text.parse().ok().map(Self::Long),
            "float4" | "float8" => parse_double(text).map(Self::Double),
            "bytea" => decode_bytea_hex(text).map(Self::Blob),
            _ => None,
        };
        converted.unwrap_or_else(|| Self::Text(text.to_owned()))
    }

    /// Rough size in bytes, for `ResultSize`.
    fn size(&self) -> usize {
        match self {
            Self::Null => 0,
            Self::Boolean(_) => 1,
            Self::Long(_) | Self::Double(_) => 8,
            Self::Text(text) => text.len(),
            Self::Blob(bytes) => bytes.len(),
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Self::Null => map.serialize_entry("isNull", &true)?,
            Self::Boolean(value) => map.serialize_entry("booleanValue", value)?,
            Self::Long(value) => map.serialize_entry("longValue", value)?,
            Self::Double(value) if value.is_finite() => {
                map.serialize_entry("doubleValue", value)?
            }
            // JSON has no NaN or infinity; AWS JSON protocols send them as strings.
            Self::Double(value) => map.serialize_entry("doubleValue", non_finite_name(*value))?,
            Self::Text(value) => map.serialize_entry("stringValue", value)?,
            Self::Blob(value) => map.serialize_entry("blobValue", &STANDARD.encode(value))?,
        }
        map.end()
    }
}

fn parse_double(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

fn non_finite_name(value: f64) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// `bytea` in the `hex` output format: `\x` then two hex digits per byte.
fn decode_bytea_hex(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Where a result column comes from, when it is a plain table column.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableColumn {
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) not_null: bool,
    pub(crate) default: Option<String>,
}

/// The Data API's `ColumnMetadata`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ColumnMetadata {
    name: String,
    label: String,
    type_name: String,
    /// JDBC convention: 0 no nulls, 1 nullable.
    nullable: i32,
    is_case_sensitive: bool,
    is_signed: bool,
    is_currency: bool,
    precision: i32,
    scale: i32,
    length: i32,
    schema_name: String,
    table_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    column_default: Option<String>,
}

impl ColumnMetadata {
    pub(crate) fn new(
        name: &str,
        ty: &Type,
        type_modifier: i32,
        table: Option<&TableColumn>,
    ) -> Self {
        let type_name = redshift_type_name(ty);
        let (precision, scale) = precision_and_scale(&type_name, type_modifier);
        let table = table.cloned().unwrap_or_default();
        Self {
            name: name.to_owned(),
            label: name.to_owned(),
            is_case_sensitive: matches!(type_name.as_str(), "varchar" | "bpchar" | "name"),
            is_signed: matches!(
                type_name.as_str(),
                "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" | "money"
            ),
            is_currency: type_name == "money",
            nullable: if table.not_null { 0 } else { 1 },
            precision,
            scale,
            length: 0,
            schema_name: table.schema,
            table_name: table.table,
            column_default: table.default,
            type_name,
        }
    }
}

/// Redshift has no `text` (it stores it as `varchar`) and calls `bytea` `varbyte`.
fn redshift_type_name(ty: &Type) -> String {
    match ty.name() {
        "text" => "varchar".to_owned(),
        "bytea" => "varbyte".to_owned(),
        name => name.to_owned(),
    }
}

/// Precision and scale as Redshift's metadata reports them; for character
/// types the precision is the declared length.
fn precision_and_scale(type_name: &str, type_modifier: i32) -> (i32, i32) {
    let declared = type_modifier - 4; // PostgreSQL stores length + 4
    match type_name {
        "numeric" if declared >= 0 => ((declared >> 16) & 0xffff, declared & 0xffff),
        "varchar" | "bpchar" if declared >= 0 => (declared, 0),
        "int2" => (5, 0),
        "int4" => (10, 0),
        "int8" => (19, 0),
        "float4" => (8, 8),
        "float8" => (17, 17),
        "bool" => (1, 0),
        "timestamp" | "timestamptz" => (29, 6),
        "date" => (13, 0),
        _ => (0, 0),
    }
}

/// The rows and columns of a finished statement, kept until it is forgotten.
#[derive(Debug, Clone)]
pub(crate) struct ResultSet {
    pub(crate) columns: Vec<ColumnMetadata>,
    pub(crate) records: Vec<Vec<Field>>,
}

impl ResultSet {
    pub(crate) fn size(&self) -> i64 {
        let bytes: usize = self.records.iter().flatten().map(Field::size).sum();
        i64::try_from(bytes).unwrap_or(i64::MAX)
    }
}

/// Opaque `NextToken`: it names the statement so that a token cannot be
/// replayed against another one.
pub(crate) fn next_token(statement_id: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{offset}|{statement_id}"))
}

/// The row offset a `NextToken` points at, if it is a token for this statement.
pub(crate) fn token_offset(token: &str, statement_id: &str) -> Option<usize> {
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (offset, id) = decoded.split_once('|')?;
    (id == statement_id).then(|| offset.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_text_values_by_type() {
        assert_eq!(
            Field::from_text(&Type::BOOL, Some("t")),
            Field::Boolean(true)
        );
        assert_eq!(Field::from_text(&Type::INT8, Some("-42")), Field::Long(-42));
        assert_eq!(
            Field::from_text(&Type::FLOAT8, Some("1.5")),
            Field::Double(1.5)
        );
        assert_eq!(
            Field::from_text(&Type::NUMERIC, Some("1.50")),
            Field::Text("1.50".into())
        );
        assert_eq!(
            Field::from_text(&Type::BYTEA, Some("\\x00ff")),
            Field::Blob(vec![0, 255])
        );
        assert_eq!(Field::from_text(&Type::TEXT, None), Field::Null);
    }

    #[test]
    fn serializes_as_the_field_union() {
        let json = serde_json::to_string(&vec![
            Field::Null,
            Field::Double(f64::INFINITY),
            Field::Blob(vec![1, 2]),
        ])
        .unwrap_or_default();
        assert_eq!(
            json,
            r#"[{"isNull":true},{"doubleValue":"Infinity"},{"blobValue":"AQI="}]"#
        );
    }

    #[test]
    fn tokens_belong_to_one_statement() {
        let token = next_token("abc:1", 20);
        assert_eq!(token_offset(&token, "abc:1"), Some(20));
        assert_eq!(token_offset(&token, "abc:2"), None);
        assert_eq!(token_offset("garbage!", "abc:1"), None);
    }
}
